"""guard(model): checks inside existing models, without editing their code."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnshapes import ShapeError, checks, guard


class Transposing(nn.Module):
    """A real silent bug: the embedding output is transposed before a batch_first GRU. torch runs it."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10, 4)
        self.rnn = nn.GRU(4, 6, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        out, _ = self.rnn(self.embedding(x).transpose(0, 1))
        return self.head(out[:, -1])


def test_torch_runs_the_transposed_input_silently_and_guard_catches_it():
    model, x = Transposing(), torch.randint(0, 10, (3, 7))
    assert model(x).shape == (7, 3)  # torch: no complaint, wrong batch
    with guard(model) as handle:
        assert handle.modules == ["embedding", "rnn", "head"]
        with pytest.raises(
            ShapeError,
            match=r"(?s)rnn \(GRU\)\.forward\(\): argument 'input'.*batch=3 from the model's input axis 0.*\[layout\]",
        ):
            model(x)
    assert model(x).shape == (7, 3)  # removed: the model runs as before


def test_guard_passes_correct_calls_and_sequence_first_models():
    rnn = nn.LSTM(4, 5, num_layers=2, bidirectional=True)  # sequence-first
    with guard(rnn):
        out, (h, c) = rnn(torch.randn(7, 3, 4), (torch.zeros(4, 3, 5), torch.zeros(4, 3, 5)))
        assert out.shape == (7, 3, 10)
        with pytest.raises(ShapeError, match=r"argument 'hx\[1\]'.*|mismatch: axis 1 \(batch\)"):
            rnn(torch.randn(7, 3, 4), (torch.zeros(4, 3, 5), torch.zeros(4, 2, 5)))


def test_guard_checks_packed_input_and_binds_batch_from_it():
    gru = nn.GRU(4, 5, batch_first=True)
    packed = pack_padded_sequence(
        torch.randn(3, 6, 4), torch.tensor([6, 2, 4]), batch_first=True, enforce_sorted=False
    )
    with guard(gru):
        out, h = gru(packed)
        assert h.shape == (1, 3, 5)
        with pytest.raises(ShapeError, match=r"(?s)argument 'hx'.*axis 1 \(batch\) should be 3, got 2"):
            gru(packed, torch.zeros(1, 2, 5))
        with pytest.raises(ShapeError, match=r"argument 'input\.data'.*|axis 1 \(input\) should be 4, got 3"):
            gru(
                pack_padded_sequence(
                    torch.randn(3, 6, 3), torch.tensor([6, 2, 4]), batch_first=True, enforce_sorted=False
                )
            )


def test_guard_cells_and_linear():
    cell = nn.GRUCell(4, 5)
    head = nn.Linear(5, 2)
    model = nn.ModuleDict({"cell": cell, "head": head})
    with guard(model, batch_axis=None):
        h = cell(torch.randn(3, 4), torch.zeros(3, 5))
        head(h)
        with pytest.raises(ShapeError, match=r"cell \(GRUCell\)\.forward\(\): argument 'hx'.*"):
            cell(torch.randn(3, 4), torch.zeros(2, 5))
        with pytest.raises(ShapeError, match=r"(?s)head \(Linear\).*axis 1 \(input\) should be 5, got 4"):
            head(torch.randn(3, 4))


def test_unbatched_input_needs_opt_in():
    rnn = nn.RNN(4, 5)
    with guard(rnn), pytest.raises(ShapeError, match=r"\[unbatched\]"):
        rnn(torch.randn(6, 4))
    with guard(rnn, allow_unbatched=True):
        assert rnn(torch.randn(6, 4))[0].shape == (6, 5)


def test_checks_off_turns_guard_off_too():
    model, x = Transposing(), torch.randint(0, 10, (3, 7))
    with guard(model), checks(False):
        assert model(x).shape == (7, 3)
