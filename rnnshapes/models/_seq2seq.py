"""Lessons 14_1 and 14_2: an encoder GRU and a decoder GRU, with or without attention."""

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_packed_sequence

from rnnshapes.core._checks import shapecheck
from rnnshapes.core._pack import pack
from rnnshapes.data._pairs import BOS, EOS, MAX_SOURCE, PAD, PAIRS_ALPHABET, SPECIALS, source_of

DecoderState = Float[Tensor, "layers batch hidden"]
"""The decoder's hidden state: ``(layers, batch, hidden)`` (the decoder reads one direction)."""

Memory = Float[Tensor, "batch source dirs*hidden"]
"""The encoder's outputs at every source step, both directions side by side, zeros past each length."""


def prepare_source(text: str, alphabet: str = PAIRS_ALPHABET, max_source: int = MAX_SOURCE) -> str:
    """``text`` as a seq2seq model reads it: lower-cased, spaces removed.

    Raises:
        ValueError: the text is empty (after removing spaces), holds a character the model cannot read, or
            is longer than ``max_source``; one sentence says which.
    """
    source = source_of(text)
    if not source:
        raise ValueError("the text is empty (after removing spaces): give at least one character")
    allowed = {source_of(c) for c in alphabet} - {""}
    unknown = sorted(set(source) - allowed)
    if unknown:
        raise ValueError(
            f"characters {''.join(unknown)!r} are not in the model's vocabulary; it reads lower-case letters "
            f"and {''.join(sorted(c for c in allowed if not c.isalpha()))!r}"
        )
    if len(source) > max_source:
        raise ValueError(
            f"the text has {len(source)} characters without spaces; the model reads at most {max_source}"
        )
    return source


class _Seq2SeqBase(nn.Module):
    """What both models share: the configuration, the encoder, the decoder GRU and greedy decoding."""

    def __init__(
        self,
        *,
        alphabet: str = PAIRS_ALPHABET,
        embed: int = 64,
        hidden: int = 256,
        layers: int = 1,
        bidirectional: bool = True,
        max_source: int = MAX_SOURCE,
        max_target: int = 64,
    ) -> None:
        super().__init__()
        if not alphabet or len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet must be non-empty, every character once; got {alphabet!r}")
        if max_source < 1 or max_target < 1:
            raise ValueError(f"max_source and max_target must be >= 1, got {max_source} and {max_target}")
        self.config: dict[str, Any] = dict(
            alphabet=alphabet,
            embed=embed,
            hidden=hidden,
            layers=layers,
            bidirectional=bidirectional,
            max_source=max_source,
            max_target=max_target,
        )
        self.alphabet = alphabet
        self.max_source, self.max_target = max_source, max_target
        self.batch_first = True
        dirs = 2 if bidirectional else 1
        self.embedding = nn.Embedding(SPECIALS + len(alphabet), embed, padding_idx=PAD)
        self.encoder = nn.GRU(embed, hidden, num_layers=layers, bidirectional=bidirectional, batch_first=True)
        self.bridge = nn.Linear(dirs * hidden, hidden)  # the encoder's final states -> the decoder's first
        self.decoder = nn.GRU(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, SPECIALS + len(alphabet))

    def shape_dims(self) -> dict[str, int]:
        return {"vocab": self.embedding.num_embeddings, "embed": self.embedding.embedding_dim}

    @shapecheck
    def encode(
        self, source: Int[Tensor, "batch source"], lengths: Int[Tensor, " batch"]
    ) -> tuple[Memory, DecoderState]:
        """Read the sources in one call over the packed batch.

        Returns ``(memory, hidden)``: the encoder's outputs ``(N, S, D * H)`` (zeros past each length) and the
        decoder's first state ``(num_layers, N, H)``, ``tanh(bridge(...))`` of each layer's final states of
        both directions, taken at each source's own last step.
        """
        layers, dirs = self.encoder.num_layers, 2 if self.encoder.bidirectional else 1
        embedded = self.embedding(source)  # (batch, source) -> (batch, source, embed)
        lengths = lengths.cpu()
        if bool((lengths == source.shape[1]).all()):
            # no padding at all (the lessons batch sources of one length together): the same result as
            # packing, and twice as fast on the CPU, whose packed GRU copies the whole input at every step
            memory, h_n = self.encoder(embedded)  # (batch, source, dirs*hidden), (layers*dirs, batch, hidden)
        else:
            packed = pack(embedded, lengths, batch_first=True)  # PackedSequence, data: (total, embed)
            packed_out, h_n = self.encoder(packed)  # h_n: (layers*dirs, batch, hidden), in the input's order
            # PackedSequence -> (batch, source, dirs*hidden), zeros past each length, as long as the input
            memory, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=source.shape[1])
        _, batch, hidden = h_n.shape
        # (layers*dirs, batch, hidden) -> (layers, dirs, batch, hidden) -> (layers, batch, dirs*hidden)
        final = (
            h_n.view(layers, dirs, batch, hidden).permute(0, 2, 1, 3).reshape(layers, batch, dirs * hidden)
        )
        return memory, torch.tanh(self.bridge(final))  # (layers, batch, hidden)

    def _decode(
        self, target_in: Tensor, hidden: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(logits (N, T, V), hidden (num_layers, N, H), weights (N, T, S) or None)``."""
        raise NotImplementedError

    @staticmethod
    def _mask(lengths: Tensor, source: int, device: torch.device) -> Tensor:
        return (
            torch.arange(source, device=device) < lengths.to(device)[:, None]
        )  # (batch, source): True = real

    @shapecheck
    def step(
        self,
        token: Int[Tensor, "batch target"],
        hidden: DecoderState,
        memory: Memory,
        lengths: Int[Tensor, " batch"],
    ) -> tuple[Float[Tensor, "batch target vocab"], DecoderState]:
        """Run the decoder over ``token`` (one step or several) from ``hidden``, as greedy decoding does.

        Returns the logits ``(N, T, V)`` and the state after the last step, to pass to the next call.
        """
        mask = self._mask(lengths, memory.shape[1], memory.device)
        logits, hidden, _ = self._decode(token, hidden, memory, mask)
        return logits, hidden

    @shapecheck
    def greedy(
        self,
        source: Int[Tensor, "batch source"],
        lengths: Int[Tensor, " batch"],
        max_length: int | None = None,
    ) -> tuple[Int[Tensor, "batch target"], Int[Tensor, " batch"]]:
        """Greedy decoding of a whole batch: each row stops at its own EOS.

        From BOS, the decoder is run one step at a time on every row, each fed its own previous argmax. A row
        ends at its EOS, or after ``2 * lengths[i] + 1`` steps: a restored line is its source's characters
        with at most a space after each, so it has at most ``2 * lengths[i]`` characters (in the lessons'
        data the longest is ``2 * lengths[i] - 2``); a model that has not learned where lines end would
        otherwise write on to ``max_length``. An ended row gets PAD from then on, and the loop ends when every
        row has ended (or after ``max_length`` steps; default: the model's ``max_target``).

        Returns:
            ``(tokens, lengths)``: the indices ``(N, T)``, EOS included, PAD after it, and each row's length
            before its EOS ``(N,)`` (the number of characters written where no EOS came).
        """
        steps = self.max_target if max_length is None else max_length
        memory, hidden = self.encode(source, lengths)
        mask = self._mask(lengths, memory.shape[1], memory.device)
        batch = source.shape[0]
        token = torch.full((batch, 1), BOS, dtype=torch.long, device=source.device)  # (batch, target=1)
        done = torch.zeros(batch, dtype=torch.bool, device=source.device)
        limit = (2 * lengths.to(source.device) + 1).clamp(max=steps)  # (batch,): the most steps of each row
        out_lengths = limit.clone()
        produced: list[Tensor] = []
        for t in range(steps):
            logits, hidden, _ = self._decode(token, hidden, memory, mask)  # logits: (batch, 1, vocab)
            token = logits.argmax(-1).masked_fill(done[:, None], PAD)  # (batch, 1): PAD after a row's end
            produced.append(token)
            ended = (token[:, 0] == EOS) & ~done
            out_lengths = torch.where(ended, t, out_lengths)
            done = done | ended | (t + 1 >= limit)
            if bool(done.all()):
                break
        return torch.cat(produced, dim=1), out_lengths

    def prepare(self, text: str) -> str:
        """``text`` as the model reads it (see :func:`prepare_source`)."""
        return prepare_source(text, self.alphabet, self.max_source)

    def restore(self, texts: list[str]) -> list[str]:
        """Restore case and spaces: each text is lower-cased, stripped of spaces and decoded greedily.

        Raises:
            ValueError: a text is empty, holds a character the model cannot read, or is too long.
        """
        sources = [self.prepare(t) for t in texts]
        index = {c: i + SPECIALS for i, c in enumerate(self.alphabet)}
        device = self.head.weight.device
        longest = max(len(s) for s in sources)
        source = torch.full((len(sources), longest), PAD, dtype=torch.long)
        for i, s in enumerate(sources):
            source[i, : len(s)] = torch.tensor([index[c] for c in s])
        lengths = torch.tensor([len(s) for s in sources])
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                tokens, out_lengths = self.greedy(source.to(device), lengths)
        finally:
            self.train(was_training)
        return [
            "".join(self.alphabet[i - SPECIALS] for i in row[:n].tolist() if i >= SPECIALS)
            for row, n in zip(tokens.cpu(), out_lengths.tolist(), strict=True)
        ]


class Seq2Seq(_Seq2SeqBase):
    r"""Lesson 14_1: an encoder GRU reads the source; its summary starts a decoder GRU that writes the target.

    What the lesson teaches: sequence to sequence. The encoder reads the whole source (a packed batch, so
    each source ends at its own length); the decoder starts from the encoder's final state and writes the
    target one character at a time, each step fed the previous character. In training, the decoder is fed
    the true previous characters (*teacher forcing*), so the whole target runs in one call; to translate, it
    is fed its own predictions (:meth:`greedy`). Everything the decoder knows about the source passes through
    one summary of ``H`` numbers (its first state, and an input of every step, as in Cho et al., 2014), so
    long sources are hard: lesson 14_2 adds attention.

    The task is the course's: restore the case and the spaces of a Shakespeare line from its lower-cased,
    space-removed form (``"thisissungkim.iloveyou."`` -> ``"This is Sung Kim. I love you."``).

    Args:
        alphabet: the characters of the targets; ``alphabet[i]`` is index ``i + 3`` after PAD = 0, BOS = 1 and
            EOS = 2, and V = ``len(alphabet) + 3``. Default: the 64 characters of the Shakespeare lines
        embed: E, size of each embedding vector (one embedding for source and target). Default: 64
        hidden: H, features of the encoder's and the decoder's hidden state. Default: 256
        layers: stacked GRU layers of the encoder and of the decoder. Default: 1
        bidirectional: read the source both ways (D = 2). Default: ``True``
        max_source: the longest source :meth:`restore` accepts. Default: 40
        max_target: the most steps :meth:`greedy` takes. Default: 64

    Inputs: source, lengths, target_in
        * **source**: source indices padded with PAD, integer tensor ``(N, S)``.
        * **lengths**: integer tensor ``(N)``: each source's length, in ``1..S`` (any device).
        * **target_in**: BOS then the target, padded with PAD, integer tensor ``(N, T)``.

    Outputs: logits
        * **logits**: ``(N, T, V)``: at each step, the scores of the next character (the target, then EOS).

    where:
        N = batch size
        S = longest source in the batch (``source`` time)
        T = longest target + 1 (``target`` time)
        V = vocabulary size = ``len(alphabet) + 3``
        E = embedding size
        H = hidden size
        D = 2 if bidirectional else 1

    What the course code got wrong:
        * It trains with batch size 1 and runs the decoder one character per call (the course itself calls it
          "extremely slow"). Here the encoder reads a packed batch in one call, the decoder reads the whole
          target in one call under teacher forcing, and greedy decoding runs a whole batch at once.
        * ``if top_i is EOS_token`` compares a tensor with an int by identity: it is never true, so decoding
          never stops at EOS and always writes ``predict_len`` characters. Here each row stops at its own EOS.
        * ``loss.data[0]`` raises ``IndexError`` in modern torch; use ``loss.item()``. And
          ``if i % 100 is 0`` compares ints by identity (a ``SyntaxWarning``, true only by CPython's small-int
          cache).
        * Its source and target share the 128 ASCII codes, with EOS = 1 and SOS = ``chr(0)``; nothing pads,
          because nothing is batched. Here PAD, BOS and EOS are indices 0-2 before the lines' 64 characters,
          and the embedding's padding row stays zero.
    """

    def __init__(
        self,
        *,
        alphabet: str = PAIRS_ALPHABET,
        embed: int = 64,
        hidden: int = 256,
        layers: int = 1,
        bidirectional: bool = True,
        max_source: int = MAX_SOURCE,
        max_target: int = 64,
    ) -> None:
        super().__init__(
            alphabet=alphabet,
            embed=embed,
            hidden=hidden,
            layers=layers,
            bidirectional=bidirectional,
            max_source=max_source,
            max_target=max_target,
        )
        embed, hidden = self.embedding.embedding_dim, self.decoder.hidden_size
        # every decoder step reads the previous character and the source's summary (Cho et al., 2014)
        self.decoder = nn.GRU(embed + hidden, hidden, num_layers=self.decoder.num_layers, batch_first=True)

    def summary(self, memory: Tensor, mask: Tensor) -> Tensor:
        """``tanh(bridge(...))`` of the last layer's final states, read off the memory: ``(N, H)``.

        The forward direction ends at each source's last real step, the backward one at its first step.
        """
        hidden = self.encoder.hidden_size
        last = (mask.sum(1) - 1).clamp(min=0)  # (batch,): each source's last real step
        forward = memory[
            torch.arange(memory.shape[0], device=memory.device), last, :hidden
        ]  # (batch, hidden)
        final = torch.cat([forward, memory[:, 0, hidden:]], dim=-1)  # (batch, dirs*hidden)
        return torch.tanh(self.bridge(final))  # (batch, hidden)

    def _decode(
        self, target_in: Tensor, hidden: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        embedded = self.embedding(target_in)  # (batch, target) -> (batch, target, embed)
        summary = self.summary(memory, mask)[:, None, :].expand(-1, target_in.shape[1], -1)  # (b, t, hidden)
        output, hidden = self.decoder(
            torch.cat([embedded, summary], dim=-1), hidden
        )  # (batch, target, hidden)
        return self.head(output), hidden, None  # logits: (batch, target, vocab)

    @shapecheck
    def forward(
        self,
        source: Int[Tensor, "batch source"],
        lengths: Int[Tensor, " batch"],
        target_in: Int[Tensor, "batch target"],
    ) -> Float[Tensor, "batch target vocab"]:
        memory, hidden = self.encode(source, lengths)  # (batch, source, dirs*hidden), (layers, batch, hidden)
        mask = self._mask(lengths, source.shape[1], source.device)
        logits, _, _ = self._decode(target_in, hidden, memory, mask)  # the whole target in one call
        return logits


class Seq2SeqAttention(_Seq2SeqBase):
    r"""Lesson 14_2: seq2seq with attention: each decoder step reads a weighted sum of the encoder's outputs.

    What the lesson teaches: attention. Without it (lesson 14_1) the decoder sees the source only through the
    encoder's final state, and quality falls as sources grow longer. Here, at every target step, the
    decoder's output ``h_t`` scores every source step's encoder output ``m_s`` (``score = h_t . W m_s``, the
    course's "general" score), a softmax over the source turns the scores into weights, and the weighted sum
    of the encoder outputs (the *context*) joins ``h_t`` to predict the next character:
    ``logits = head(tanh(combine([h_t; context])))``. Padded source positions are masked: they get weight 0.
    The weights ``(N, T, S)`` show where each output character looked. The decoder's input is the previous
    character only (no context fed back in), so teacher forcing still runs the whole target in one call.

    Args:
        alphabet: the characters of the targets; ``alphabet[i]`` is index ``i + 3`` after PAD = 0, BOS = 1 and
            EOS = 2, and V = ``len(alphabet) + 3``. Default: the 64 characters of the Shakespeare lines
        embed: E, size of each embedding vector (one embedding for source and target). Default: 64
        hidden: H, features of the encoder's and the decoder's hidden state. Default: 256
        layers: stacked GRU layers of the encoder and of the decoder. Default: 1
        bidirectional: read the source both ways (D = 2). Default: ``True``
        max_source: the longest source :meth:`restore` accepts. Default: 40
        max_target: the most steps :meth:`greedy` takes. Default: 64

    Inputs: source, lengths, target_in
        * **source**: source indices padded with PAD, integer tensor ``(N, S)``.
        * **lengths**: integer tensor ``(N)``: each source's length, in ``1..S`` (any device).
        * **target_in**: BOS then the target, padded with PAD, integer tensor ``(N, T)``.

    Outputs: logits, weights
        * **logits**: ``(N, T, V)``: at each step, the scores of the next character (the target, then EOS).
        * **weights**: ``(N, T, S)``: the attention of each target step over the source steps; each row sums
          to 1 and is 0 past the source's length.

    where:
        N = batch size
        S = longest source in the batch (``source`` time)
        T = longest target + 1 (``target`` time)
        V = vocabulary size = ``len(alphabet) + 3``
        E = embedding size
        H = hidden size
        D = 2 if bidirectional else 1

    What the course code got wrong:
        * It trains with batch size 1 and runs the decoder one character per call (the course itself calls it
          "extremely slow"). Here the encoder reads a packed batch in one call, the decoder reads the whole
          target in one call under teacher forcing, and greedy decoding runs a whole batch at once.
        * ``if top_i is EOS_token`` compares a tensor with an int by identity: it is never true, so decoding
          never stops at EOS and always writes ``predict_len`` characters. Here each row stops at its own EOS.
        * ``loss.data[0]`` raises ``IndexError`` in modern torch; use ``loss.item()``. And
          ``if i % 100 is 0`` compares ints by identity (a ``SyntaxWarning``, true only by CPython's small-int
          cache).
        * Its source and target share the 128 ASCII codes, with EOS = 1 and SOS = ``chr(0)``; nothing pads,
          because nothing is batched. Here PAD, BOS and EOS are indices 0-2 before the lines' 64 characters,
          and the embedding's padding row stays zero.
        * 14_2 computes the attention scores in a Python loop over the source positions, one ``torch.dot``
          each (about a quarter of a second per pair on this project's CPU). Here they are one batched matrix
          product ``(N, T, H) @ (N, H, S)``.
        * 14_2's ``F.softmax(attn_scores)`` has no ``dim``: torch warns and guesses. Here the softmax runs
          over the source axis (``dim=-1``), after the padded source positions are set to ``-inf``, so they
          get weight 0 and a batch's padding cannot change any output.
    """

    def __init__(
        self,
        *,
        alphabet: str = PAIRS_ALPHABET,
        embed: int = 64,
        hidden: int = 256,
        layers: int = 1,
        bidirectional: bool = True,
        max_source: int = MAX_SOURCE,
        max_target: int = 64,
    ) -> None:
        super().__init__(
            alphabet=alphabet,
            embed=embed,
            hidden=hidden,
            layers=layers,
            bidirectional=bidirectional,
            max_source=max_source,
            max_target=max_target,
        )
        hidden, dirs = self.decoder.hidden_size, 2 if self.encoder.bidirectional else 1
        self.key = nn.Linear(dirs * hidden, hidden, bias=False)  # W of the score h_t . W m_s
        self.combine = nn.Linear(hidden + dirs * hidden, hidden)  # [h_t; context] -> the head's input

    @shapecheck
    def attend(
        self,
        query: Float[Tensor, "batch target hidden"],
        memory: Memory,
        lengths: Int[Tensor, " batch"],
    ) -> tuple[Float[Tensor, "batch target dirs*hidden"], Float[Tensor, "batch target source"]]:
        """Attention of each query, masked past each source's length: ``(context, weights)``."""
        mask = self._mask(lengths, memory.shape[1], memory.device)
        context, weights = self._attend(query, memory, mask)
        return context, weights

    def _attend(self, query: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        keys = self.key(memory)  # (batch, source, dirs*hidden) -> (batch, source, hidden)
        # (batch, target, hidden) @ (batch, hidden, source) -> (batch, target, source), in one product
        scores = query @ keys.transpose(1, 2) / query.shape[-1] ** 0.5
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))  # padding: weight 0 after the softmax
        weights = torch.softmax(scores, dim=-1)  # over the source axis
        context = weights @ memory  # (batch, target, source) @ (batch, source, dirs*hidden)
        return context, weights

    def _decode(
        self, target_in: Tensor, hidden: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        embedded = self.embedding(target_in)  # (batch, target) -> (batch, target, embed)
        output, hidden = self.decoder(embedded, hidden)  # output: (batch, target, hidden)
        context, weights = self._attend(output, memory, mask)  # (batch, target, dirs*hidden), (b, t, source)
        combined = torch.tanh(self.combine(torch.cat([output, context], dim=-1)))  # (batch, target, hidden)
        return self.head(combined), hidden, weights  # logits: (batch, target, vocab)

    @shapecheck
    def forward(
        self,
        source: Int[Tensor, "batch source"],
        lengths: Int[Tensor, " batch"],
        target_in: Int[Tensor, "batch target"],
    ) -> tuple[Float[Tensor, "batch target vocab"], Float[Tensor, "batch target source"]]:
        memory, hidden = self.encode(source, lengths)  # (batch, source, dirs*hidden), (layers, batch, hidden)
        mask = self._mask(lengths, source.shape[1], source.device)
        logits, _, weights = self._decode(target_in, hidden, memory, mask)  # the whole target in one call
        assert weights is not None
        return logits, weights
