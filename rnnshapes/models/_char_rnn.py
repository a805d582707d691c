"""Lesson 13_3: a character-level language model that writes text one character at a time."""

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from rnnshapes.core._checks import Hidden, shapecheck

ASCII = "".join(chr(code) for code in range(128))
"""The course's alphabet: the 128 ASCII characters, each at the index of its code."""


class CharRNN(nn.Module):
    r"""Lesson 13_3: character indices -> ``nn.Embedding`` -> ``nn.GRU`` -> ``nn.Linear`` -> next-char logits.

    What the lesson teaches: a language model predicts the next character from the characters so far. It is
    trained with *teacher forcing*: the input is a chunk of real text and the target is the same chunk shifted
    by one character, so every time step is a training example and a whole batch of chunks runs in one call.
    To read a long text in consecutive chunks, pass the returned hidden state (detached) into the next call.
    :meth:`generate` then writes text: it feeds a prime string once and samples one character at a time,
    feeding each back in while the hidden state carries everything read so far.

    Args:
        alphabet: the characters the model reads and writes; character ``alphabet[i]`` is index ``i`` and
            V = ``len(alphabet)``. Every character must appear once. Default: the 128 ASCII characters
        embed: E, size of each embedding vector. Default: 100
        hidden: H_out, features of the GRU's hidden state. Default: 100
        layers: number of stacked GRU layers. Default: 3
        dropout: dropout probability between stacked GRU layers. Default: 0.0
        batch_first: if ``True``, sequences are ``(N, L, ...)``, else ``(L, N, ...)``. Default: ``True``

    Inputs: x, hidden
        * **x**: character indices in ``[0, V)``, integer tensor ``(N, L)`` if batch_first else ``(L, N)``.
        * **hidden**: the state from the previous chunk ``(num_layers, N, H_out)``; zeros if ``None``.

    Outputs: logits, h_n
        * **logits**: next-character scores ``(N, L, V)`` if batch_first else ``(L, N, V)``.
        * **h_n**: the state after the last step ``(num_layers, N, H_out)``, for the next chunk.

    where:
        N = batch size (chunks read in parallel)
        L = chunk length
        V = vocabulary size = ``len(alphabet)``
        E = embedding size
        H_out = hidden size
        num_layers = layers (the GRU is one-directional, D = 1)

    What the course code got wrong:
        * 13_3's ``train`` feeds the model its own ``argmax`` prediction instead of the true previous
          character (its teacher-forcing function is never called), so the input carries no information
          about the text and the model only learns character frequencies. Here :meth:`forward` takes the true
          characters, a whole batch of chunks per call, and the loss compares them with the next ones.
        * It runs one character of one line per call, which the course itself calls extremely slow.
        * ``loss.data[0]`` raises ``IndexError`` in modern torch; use ``loss.item()``.
    """

    def __init__(
        self,
        *,
        alphabet: str = ASCII,
        embed: int = 100,
        hidden: int = 100,
        layers: int = 3,
        dropout: float = 0.0,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        if not alphabet or len(set(alphabet)) != len(alphabet):
            repeated = sorted({c for c in alphabet if alphabet.count(c) > 1})
            raise ValueError(
                f"alphabet must be a non-empty string in which every character appears once; got "
                f"{len(alphabet)} characters, repeated: {repeated}"
            )
        self.config: dict[str, Any] = dict(
            alphabet=alphabet,
            embed=embed,
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            batch_first=batch_first,
        )
        self.alphabet = alphabet
        self.batch_first = batch_first
        self._index = {c: i for i, c in enumerate(alphabet)}
        self.embedding = nn.Embedding(len(alphabet), embed)
        self.rnn = nn.GRU(
            input_size=embed,
            hidden_size=hidden,
            num_layers=layers,
            dropout=dropout if layers > 1 else 0.0,
            batch_first=batch_first,
        )
        self.head = nn.Linear(hidden, len(alphabet))

    def shape_dims(self) -> dict[str, int]:
        return {"vocab": self.embedding.num_embeddings, "embed": self.embedding.embedding_dim}

    @shapecheck
    def forward(
        self, x: Int[Tensor, "*seq"], hidden: Hidden | None = None
    ) -> tuple[Float[Tensor, "*seq vocab"], Hidden]:
        embedded = self.embedding(x)  # (*seq) -> (*seq, embed)
        output, hidden = self.rnn(embedded, hidden)  # output: (*seq, hidden); hidden: (layers, batch, hidden)
        logits = self.head(output)  # (*seq, vocab)
        return logits, hidden

    def encode(self, text: str) -> Tensor:
        """The indices of ``text``'s characters, shape ``(len(text),)``; ``ValueError`` for unknown ones."""
        unknown = sorted(set(text) - self._index.keys())
        if unknown:
            raise ValueError(
                f"characters {unknown!r} are not in the model's alphabet ({len(self.alphabet)} characters); "
                "use only characters the model was built with"
            )
        return torch.tensor([self._index[c] for c in text], dtype=torch.long)

    def generate(
        self, prime: str, length: int, temperature: float = 0.8, generator: torch.Generator | None = None
    ) -> str:
        """Write ``length`` characters that follow ``prime``.

        The prime is read once, in one call, to build up the hidden state; then each sampled character is fed
        back in, one per call, with the hidden state carried along. Runs without gradients and in eval mode
        (the module's mode is restored afterwards).

        Args:
            prime: the text to continue; non-empty, made of characters of the alphabet.
            length: how many characters to write (0 gives ``""``).
            temperature: divides the logits before sampling: below 1 sharper, above 1 more random; 0 takes
                the most likely character every time (greedy, deterministic). Default: 0.8
            generator: the random generator for sampling, on the model's device; the global one if ``None``.

        Returns:
            The ``length`` new characters, without the prime.
        """
        if not prime:
            raise ValueError("prime must hold at least one character to start from")
        if length < 0 or temperature < 0:
            raise ValueError(f"length and temperature must be >= 0, got {length} and {temperature}")
        device = self.head.weight.device
        prime_ids = self.encode(prime).to(device)  # (time,)
        if length == 0:
            return ""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                x = prime_ids[None, :] if self.batch_first else prime_ids[:, None]  # *seq with batch = 1
                logits, hidden = self(x, None)  # logits: (*seq, vocab)
                scores = logits[0, -1] if self.batch_first else logits[-1, 0]  # (vocab,) after the prime
                written: list[str] = []
                while True:
                    if temperature == 0:
                        choice = int(scores.argmax())
                    else:
                        probs = torch.softmax(scores.float() / temperature, dim=-1)  # (vocab,)
                        choice = int(torch.multinomial(probs, 1, generator=generator))
                    written.append(self.alphabet[choice])
                    if len(written) == length:
                        return "".join(written)
                    x = torch.tensor([[choice]], device=device)  # (1, 1): batch = time = 1 in either layout
                    logits, hidden = self(x, hidden)  # logits: (1, 1, vocab)
                    scores = logits.reshape(-1)  # (1, 1, vocab) -> (vocab,)
        finally:
            self.train(was_training)
