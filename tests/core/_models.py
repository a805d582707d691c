import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from rnnshapes import Hidden, LSTMState, shapecheck


class Seq(nn.Module):
    """A small checked model: one-hot input -> RNN/GRU/LSTM -> Linear head."""

    def __init__(
        self, cell: str = "gru", layers: int = 2, bidirectional: bool = True, batch_first: bool = True
    ):
        super().__init__()
        self.batch_first = batch_first
        kind = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = kind(5, 7, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
        self.head = nn.Linear(7 * (2 if bidirectional else 1), 3)

    def shape_dims(self) -> dict[str, int]:
        return {"classes": 3}

    @shapecheck
    def forward(
        self, x: Float[Tensor, "*seq input"], hidden: Hidden | LSTMState | None = None
    ) -> tuple[Float[Tensor, "*seq classes"], Hidden | LSTMState]:
        out, h = self.rnn(x, hidden)
        return self.head(out), h


class Indexed(nn.Module):
    """Embedding -> GRU over a padded batch with lengths."""

    def __init__(self, batch_first: bool = True):
        super().__init__()
        self.batch_first = batch_first
        self.embedding = nn.Embedding(11, 4)
        self.rnn = nn.GRU(4, 6, batch_first=batch_first)

    @shapecheck
    def forward(
        self, x: Int[Tensor, "*seq"], lengths: Int[Tensor, " batch"]
    ) -> Float[Tensor, "batch hidden"]:
        out, h = self.rnn(self.embedding(x))
        return h[-1]


class Seed13_1(nn.Module):
    """The course's 13_1 classifier: (batch, time) indices, .t(), a time-first GRU, fc on the whole hidden
    state (so it returns (1, batch, classes)). Correct code that transposes its interface on purpose."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(128, 100)
        self.gru = nn.GRU(100, 100)
        self.fc = nn.Linear(100, 18)

    def forward(self, input):
        hidden = torch.zeros(1, input.size(0), 100)
        _, hidden = self.gru(self.embedding(input.t()), hidden)
        return self.fc(hidden)
