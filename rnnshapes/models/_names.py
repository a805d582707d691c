"""Lessons 13_1 and 13_2: classify a name by its country with a recurrent layer over a packed batch."""

from collections.abc import Callable
from typing import Any

from jaxtyping import Float, Int
from torch import Tensor, nn

from rnnshapes.core._checks import shapecheck
from rnnshapes.core._pack import pack

_CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class NamesClassifier(nn.Module):
    r"""Lessons 13_1 and 13_2: ASCII codes -> ``nn.Embedding`` -> RNN/GRU/LSTM over a packed batch -> logits.

    What the lesson teaches: a sequence classifier reads a whole name and classifies it from the recurrent
    layer's final hidden state. Names have different lengths, so a batch is padded to its longest name and
    *packed* with its lengths: the recurrent layer then stops at each name's last character, and its final
    hidden state ``h_n`` belongs to the real last character, not to the padding. A bidirectional layer has two
    final states per layer (forward: after the last character; backward: after the first), and the classifier
    reads both of the last layer. Lesson 13_1 is the same class with ``layers=1, bidirectional=False``.

    Args:
        cell: recurrent layer, ``"rnn"``, ``"gru"`` or ``"lstm"``. Default: ``"gru"``
        vocab: V, rows of the embedding; characters are their ASCII codes. Default: 128
        embed: E, size of each embedding vector (the recurrent layer's input size). Default: 100
        hidden: H_out, features of the hidden state. Default: 100
        layers: number of stacked recurrent layers. Default: 2
        bidirectional: if ``True``, read each name both ways (D = 2). Default: ``True``
        classes: C, number of classes (countries). Default: 18
        dropout: dropout probability between stacked recurrent layers (when ``layers > 1``) and on the
            features before the output layer. Default: 0.0
        batch_first: if ``True``, ``x`` is ``(N, L)``, else ``(L, N)``. Default: ``True``

    Inputs: x, lengths
        * **x**: ASCII codes padded with 0 (the padding index) after each name's end, integer tensor
          ``(N, L)`` if batch_first else ``(L, N)``.
        * **lengths**: integer tensor ``(N)``: each name's length, in ``1..L``, in any order (on any device).

    Outputs: logits
        * **logits**: ``(N, C)``, one row of class scores per name, in the order of the input.

    where:
        N = batch size
        L = longest name in the batch
        V = vocabulary size (128 ASCII codes)
        E = embedding size
        H_out = hidden size
        D = 2 if bidirectional else 1
        C = number of classes

    The output layer reads ``D * H_out`` features: ``h_n`` is viewed as ``(num_layers, D, N, H_out)``, the
    last layer is taken, and its directions are concatenated.

    What the course code got wrong:
        * 13_1 feeds the whole hidden state, shape ``(1, N, H_out)``, into the output layer and returns
          ``(1, N, C)`` logits instead of ``(N, C)``. Here the output is ``(N, C)``.
        * 13_2 classifies from ``hidden[-1]``, which for a bidirectional layer is only the *backward*
          direction of the last layer: the forward direction of the last layer never reaches the loss, so
          30% of the GRU's weights get zero gradient. Here both directions of the last layer are concatenated
          and every parameter learns.
        * 13_2 sorts every batch by length by hand (and its targets with it) so that
          ``pack_padded_sequence`` accepts it; and ``loss.data[0]`` raises ``IndexError`` in modern torch.
          Here ``enforce_sorted=False`` lets torch sort and unsort, so results come back in the input's order.
    """

    def __init__(
        self,
        *,
        cell: str = "gru",
        vocab: int = 128,
        embed: int = 100,
        hidden: int = 100,
        layers: int = 2,
        bidirectional: bool = True,
        classes: int = 18,
        dropout: float = 0.0,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        if cell.lower() not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
        self.config: dict[str, Any] = dict(
            cell=cell,
            vocab=vocab,
            embed=embed,
            hidden=hidden,
            layers=layers,
            bidirectional=bidirectional,
            classes=classes,
            dropout=dropout,
            batch_first=batch_first,
        )
        self.batch_first = batch_first
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.rnn = _CELLS[cell.lower()](
            input_size=embed,
            hidden_size=hidden,
            num_layers=layers,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
            batch_first=batch_first,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear((2 if bidirectional else 1) * hidden, classes)

    def shape_dims(self) -> dict[str, int]:
        return {
            "classes": self.head.out_features,
            "vocab": self.embedding.num_embeddings,
            "embed": self.embedding.embedding_dim,
        }

    @shapecheck
    def forward(
        self, x: Int[Tensor, "*seq"], lengths: Int[Tensor, " batch"]
    ) -> Float[Tensor, "batch classes"]:
        layers, dirs = self.rnn.num_layers, 2 if self.rnn.bidirectional else 1
        embedded = self.embedding(x)  # (*seq) -> (*seq, embed)
        # rnnshapes.pack: pack_padded_sequence(enforce_sorted=False) with the lengths checked against time
        packed = pack(embedded, lengths.cpu(), batch_first=self.batch_first)  # PackedSequence: (total, embed)
        _, state = self.rnn(packed)  # h_n: (layers*dirs, batch, hidden), in the input's batch order
        h_n = state[0] if isinstance(state, tuple) else state  # the LSTM returns (h_n, c_n)
        _, batch, hidden = h_n.shape
        # (layers*dirs, batch, hidden) -> (layers, dirs, batch, hidden) -> last layer: (dirs, batch, hidden)
        last = h_n.view(layers, dirs, batch, hidden)[-1]
        # (dirs, batch, hidden) -> (batch, dirs, hidden) -> (batch, dirs*hidden): both directions side by side
        features = last.transpose(0, 1).reshape(batch, dirs * hidden)
        return self.head(self.dropout(features))  # (batch, classes)
