"""Lessons 12_2, 12_3 and 12_4: teach a recurrent network to turn "hihell" into "ihello"."""

from typing import Any

from jaxtyping import Float, Int
from torch import Tensor, nn

from rnnshapes.core._checks import Hidden, shapecheck


class HelloRNN(nn.Module):
    r"""Lessons 12_2 and 12_3: one-hot symbols -> ``nn.RNN`` -> ``nn.Linear`` logits, one per time step.

    What the lesson teaches: an RNN reads a sequence one step at a time and carries a hidden state from step
    to step. :meth:`step` is lesson 12_2: the caller feeds one time step and carries the hidden state itself.
    :meth:`forward` is lesson 12_3: the whole sequence in one call, which gives the same result. Trained
    on "hihell" -> "ihello" (symbols h, i, e, l, o) it learns to predict the next character.

    Args:
        input: H_in, size of each one-hot input vector (the number of symbols). Default: 5
        hidden: H_out, features of the hidden state. Default: 5
        classes: C, number of output classes (one logit each). Default: 5
        batch_first: if ``True``, sequences are ``(N, L, ...)``, else ``(L, N, ...)``. The hidden state is
            ``(1, N, H_out)`` either way. Default: ``True``

    Inputs of ``forward``: x, hidden
        * **x**: one-hot symbols, ``(N, L, H_in)`` if batch_first else ``(L, N, H_in)``.
        * **hidden**: initial hidden state ``(1, N, H_out)``; zeros if ``None``.

    Outputs of ``forward``: logits, h_n
        * **logits**: ``(N, L, C)`` if batch_first else ``(L, N, C)``: unnormalised scores for
          ``nn.CrossEntropyLoss`` (flatten them to ``(N * L, C)`` first, or move C to axis 1).
        * **h_n**: final hidden state ``(1, N, H_out)``.

    Inputs of ``step``: x_t, hidden
        * **x_t**: one time step of one-hot symbols, ``(N, H_in)``.
        * **hidden**: the hidden state from the previous step ``(1, N, H_out)``; zeros if ``None``.

    Outputs of ``step``: logits_t, hidden
        * **logits_t**: ``(N, C)``, the scores for this step.
        * **hidden**: the new hidden state ``(1, N, H_out)``, to pass to the next call.

    where:
        N = batch size
        L = sequence length
        H_in = input size (symbols)
        H_out = hidden size
        C = number of classes

    What the course code got wrong:
        * 12_2 and 12_3 use the RNN's own outputs as logits. They come out of a ``tanh``, so every logit
          lies in [-1, 1] and the cross-entropy can never go below ``log(1 + 4 / e**2)`` = 0.43 per character
          with 5 classes; measured over 100 seeds, 30 never learn "ihello". Here a ``nn.Linear`` output layer
          maps the hidden state to unbounded logits.
        * 12_3 calls ``x.view(batch, sequence_length, input_size)`` and throws the result away, then
          flattens the output with ``out.view(-1, num_classes)``, which needs hidden == classes and raises
          ``RuntimeError`` for a batch of more than one sequence (a batch-first RNN output is not contiguous
          then). Here nothing is reshaped: the head acts on the last axis and the logits keep the input's
          layout, for any batch size and length.
        * ``loss.data[0]`` raises ``IndexError`` on a 0-dimensional tensor in modern torch; use
          ``loss.item()``.
    """

    def __init__(
        self, *, input: int = 5, hidden: int = 5, classes: int = 5, batch_first: bool = True
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(
            input=input, hidden=hidden, classes=classes, batch_first=batch_first
        )
        self.batch_first = batch_first
        self.rnn = nn.RNN(input_size=input, hidden_size=hidden, batch_first=batch_first)
        self.head = nn.Linear(hidden, classes)

    def shape_dims(self) -> dict[str, int]:
        return {"classes": self.head.out_features}

    @shapecheck
    def forward(
        self, x: Float[Tensor, "*seq input"], hidden: Hidden | None = None
    ) -> tuple[Float[Tensor, "*seq classes"], Hidden]:
        output, hidden = self.rnn(x, hidden)  # output: (*seq, hidden); hidden: (1, batch, hidden)
        logits = self.head(output)  # (*seq, classes)
        return logits, hidden

    @shapecheck
    def step(
        self, x_t: Float[Tensor, "batch input"], hidden: Hidden | None = None
    ) -> tuple[Float[Tensor, "batch classes"], Hidden]:
        time_axis = 1 if self.batch_first else 0
        x = x_t.unsqueeze(time_axis)  # (batch, input) -> (batch, 1, input) or (1, batch, input)
        output, hidden = self.rnn(x, hidden)  # output: (*seq, hidden) with time = 1
        logits = self.head(output.squeeze(time_axis))  # (batch, hidden) -> (batch, classes)
        return logits, hidden


class HelloEmbedding(nn.Module):
    r"""Lesson 12_4: symbol indices -> ``nn.Embedding`` -> ``nn.RNN`` -> ``nn.Linear`` logits per time step.

    What the lesson teaches: an embedding replaces the one-hot vectors: the input is a tensor of integer
    symbol indices and the network learns a dense vector of size E for each symbol. Everything after the
    embedding is lesson 12_3.

    Args:
        vocab: V, number of symbols (rows of the embedding). Default: 5
        embed: E, size of each embedding vector (the RNN's input size). Default: 10
        hidden: H_out, features of the hidden state. Default: 5
        classes: C, number of output classes. Default: 5
        batch_first: if ``True``, sequences are ``(N, L, ...)``, else ``(L, N, ...)``. Default: ``True``

    Inputs: x, hidden
        * **x**: symbol indices in ``[0, V)``, integer tensor ``(N, L)`` if batch_first else ``(L, N)``.
        * **hidden**: initial hidden state ``(1, N, H_out)``; zeros if ``None``.

    Outputs: logits, h_n
        * **logits**: ``(N, L, C)`` if batch_first else ``(L, N, C)``.
        * **h_n**: final hidden state ``(1, N, H_out)``.

    where:
        N = batch size
        L = sequence length
        V = vocabulary size
        E = embedding size
        H_out = hidden size
        C = number of classes

    What the course code got wrong:
        * 12_4 hard-codes one sequence of length 6 and a hidden size of 5: it reshapes the embeddings with
          ``emb.view(batch_size=1, sequence_length=6, -1)``, flattens the RNN output with
          ``out.view(-1, num_classes)`` (right only while hidden == classes) and builds ``h_0`` as
          ``(batch, num_layers, hidden)`` instead of ``(num_layers, batch, hidden)``, which goes unnoticed
          only because batch == num_layers == 1. Here any batch size, length and hidden size work, with
          no reshapes at all, and the initial state defaults to zeros of the right shape.
        * ``loss.data[0]`` raises ``IndexError`` in modern torch; use ``loss.item()``.
    """

    def __init__(
        self, *, vocab: int = 5, embed: int = 10, hidden: int = 5, classes: int = 5, batch_first: bool = True
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(
            vocab=vocab, embed=embed, hidden=hidden, classes=classes, batch_first=batch_first
        )
        self.batch_first = batch_first
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.RNN(input_size=embed, hidden_size=hidden, batch_first=batch_first)
        self.head = nn.Linear(hidden, classes)

    def shape_dims(self) -> dict[str, int]:
        return {
            "classes": self.head.out_features,
            "vocab": self.embedding.num_embeddings,
            "embed": self.embedding.embedding_dim,
        }

    @shapecheck
    def forward(
        self, x: Int[Tensor, "*seq"], hidden: Hidden | None = None
    ) -> tuple[Float[Tensor, "*seq classes"], Hidden]:
        embedded = self.embedding(x)  # (*seq) -> (*seq, embed)
        output, hidden = self.rnn(embedded, hidden)  # output: (*seq, hidden); hidden: (1, batch, hidden)
        logits = self.head(output)  # (*seq, classes)
        return logits, hidden
