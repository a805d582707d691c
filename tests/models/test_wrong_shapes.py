"""Wrong shapes reach the models' checked methods as ShapeError, naming the argument and the usual mistake.

These need the real checker (rnnshapes.core._checks); while it is an identity stub (or checks are switched off with
RNNSHAPES_CHECKS=0 at import) they are skipped.
"""

from typing import Any

import pytest
import torch

from rnnshapes.core._checks import shapecheck
from rnnshapes.core._errors import ShapeError
from rnnshapes.models import CharRNN, HelloEmbedding, HelloRNN, NamesClassifier, PackedEncoder


def _probe(x: Any) -> Any:
    return x


pytestmark = pytest.mark.skipif(
    shapecheck(_probe) is _probe, reason="shapecheck is not checking (stub or disabled)"
)


def test_hidden_given_batch_first() -> None:
    model = HelloRNN(batch_first=True)
    with pytest.raises(
        ShapeError, match=r"(?s)HelloRNN.forward\(\): argument 'hidden'.*\[hidden-batch-first\]"
    ):
        model(torch.randn(3, 6, 5), torch.zeros(3, 1, 5))  # (batch, layers*dirs, hidden)


def test_input_in_the_other_layout_with_hidden_given() -> None:
    model = HelloRNN(batch_first=True)
    x = torch.randn(6, 3, 5)  # (time, batch, input) given to a batch_first model
    with pytest.raises(
        ShapeError, match=r"(?s)argument 'hidden'.*axis 1 \(batch\) should be 6, got 3.*\[layout\]"
    ):
        model(x, torch.zeros(1, 3, 5))


def test_sequence_first_model_given_batch_first_input() -> None:
    model = PackedEncoder(input=3, hidden=4, batch_first=False)
    x = torch.randn(2, 7, 3)  # (batch, time, input) given to a sequence-first model
    with pytest.raises(ShapeError, match=r"(?s)argument 'lengths'.*\[layout\].*\[lengths-batch\]"):
        model(x, torch.tensor([7, 4]))


@pytest.mark.parametrize("batch_first", [True, False])
def test_wrong_input_size(batch_first: bool) -> None:
    model = HelloRNN(input=5, batch_first=batch_first)
    with pytest.raises(
        ShapeError, match=r"argument 'x' has the wrong shape(?s:.*)axis 2 \(input\) should be 5, got 4"
    ):
        model(torch.randn(3, 6, 4))
    encoder = PackedEncoder(input=3, batch_first=batch_first)
    with pytest.raises(ShapeError, match=r"axis 2 \(input\) should be 3, got 4"):
        encoder(torch.randn(3, 6, 4), torch.tensor([6, 5, 3]))


def test_step_given_a_whole_sequence() -> None:
    with pytest.raises(ShapeError, match=r"HelloRNN.step\(\): argument 'x_t'(?s:.*)expected 2 axes"):
        HelloRNN().step(torch.randn(3, 1, 5))


def test_indices_given_to_the_one_hot_model_and_floats_to_the_embedding() -> None:
    with pytest.raises(ShapeError, match=r"(?s)argument 'x' has the wrong dtype.*\[indices-for-one-hot\]"):
        HelloRNN()(torch.tensor([[0, 1, 0, 2, 3, 3]]))
    with pytest.raises(ShapeError, match=r"(?s)argument 'x' has the wrong dtype.*\[one-hot-for-indices\]"):
        HelloEmbedding()(torch.nn.functional.one_hot(torch.tensor([[0, 1, 0, 2, 3, 3]]), 5).float())


def test_lengths_not_matching_the_batch() -> None:
    model = NamesClassifier(embed=4, hidden=3)
    x = torch.randint(1, 128, (3, 6))
    with pytest.raises(ShapeError, match=r"(?s)argument 'lengths'.*\[lengths-batch\]"):
        model(x, torch.tensor([6, 5]))


def test_hidden_with_the_wrong_number_of_layers() -> None:
    model = CharRNN(embed=4, hidden=8, layers=3)
    with pytest.raises(
        ShapeError, match=r"argument 'hidden'(?s:.*)axis 0 \(layers\*dirs\) should be 3, got 1"
    ):
        model(torch.randint(0, 128, (2, 5)), torch.zeros(1, 2, 8))
