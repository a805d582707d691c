"""PackedEncoder (lesson 13_4): a packed batch gives exactly what each sequence gives alone."""

import pytest
import torch
from torch.testing import assert_close

from rnnshapes.core._errors import ShapeError
from rnnshapes.models import PackedEncoder


def padded(lengths: list[int], time: int, features: int, batch_first: bool) -> torch.Tensor:
    """Random sequences with garbage (not zeros) past each length: packing must ignore it."""
    x = torch.randn(len(lengths), time, features)  # (batch, time, input)
    return x if batch_first else x.transpose(0, 1)  # (batch, time, input) -> (time, batch, input)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (1, True), (2, True)])
def test_packed_batch_equals_each_sequence_alone(batch_first: bool, layers: int, bidirectional: bool) -> None:
    model = PackedEncoder(
        input=3, hidden=4, layers=layers, bidirectional=bidirectional, batch_first=batch_first
    )
    dirs = 2 if bidirectional else 1
    lengths = [3, 7, 1, 5]  # unsorted on purpose
    time = 9  # longer than the longest length
    x = padded(lengths, time, 3, batch_first)
    output, (h_n, c_n) = model(x, torch.tensor(lengths))

    batch_axis, time_axis = (0, 1) if batch_first else (1, 0)
    assert output.shape == ((4, time, dirs * 4) if batch_first else (time, 4, dirs * 4))
    assert h_n.shape == c_n.shape == (layers * dirs, 4, 4)
    for i, n in enumerate(lengths):
        alone = (
            x.select(batch_axis, i).narrow(0, 0, n).unsqueeze(batch_axis)
        )  # (1, n, input) or (n, 1, input)
        out_alone, (h_alone, c_alone) = model(alone, torch.tensor([n]))
        out_i = output.select(batch_axis, i)  # (time, dirs*hidden)
        assert_close(out_i[:n], out_alone.select(batch_axis, 0))  # both directions, every valid step
        assert out_i[n:].eq(0).all()  # zeros past the length
        assert_close(h_n[:, i], h_alone[:, 0])
        assert_close(c_n[:, i], c_alone[:, 0])


def test_results_come_back_in_the_order_of_the_input() -> None:
    model = PackedEncoder(input=2, hidden=3)
    x = torch.randn(3, 4, 2)
    out_a, (h_a, _) = model(x, torch.tensor([4, 2, 3]))
    out_b, (h_b, _) = model(x[[1, 2, 0]], torch.tensor([2, 3, 4]))  # the same batch, permuted
    assert_close(out_b, out_a[[1, 2, 0]])
    assert_close(h_b, h_a[:, [1, 2, 0]])


def test_lengths_longer_than_the_time_axis_raise_shape_error() -> None:
    model = PackedEncoder(input=2, hidden=3, batch_first=False)
    x = torch.randn(4, 2, 2)  # (time=4, batch=2, input)
    with pytest.raises(ShapeError, match=r"(?s)every length in 1..time=4.*max 5.*\[lengths-range\]"):
        model(x, torch.tensor([5, 2]))
