"""The embedded hihell data of lessons 12_2 to 12_4."""

import pytest
import torch

from rnnshapes import DataError
from rnnshapes.data import HIHELL_IDX2CHAR, hihell_data, hihell_decode, hihell_encode


def test_hihell_tensors():
    d = hihell_data()
    assert d.idx2char == HIHELL_IDX2CHAR == ("h", "i", "e", "l", "o")
    assert d.inputs.shape == d.targets.shape == (1, 6)
    assert d.inputs.dtype == d.targets.dtype == torch.long
    assert d.inputs_one_hot.shape == (1, 6, 5)
    assert d.inputs_one_hot.dtype == torch.float32
    assert hihell_decode(d.inputs) == "hihell"
    assert hihell_decode(d.targets) == "ihello"
    assert torch.equal(d.inputs_one_hot.argmax(-1), d.inputs)
    assert torch.equal(d.inputs_one_hot.sum(-1), torch.ones(1, 6))
    assert torch.equal(d.targets[0, :-1], d.inputs[0, 1:])  # each step predicts the next character
    assert d.targets.view(-1).tolist() == [1, 0, 2, 3, 3, 4]  # the lesson's labels


def test_hihell_data_are_fresh_tensors():
    first = hihell_data()
    first.inputs.zero_()
    assert hihell_decode(hihell_data().inputs) == "hihell"


def test_hihell_encode_rejects_other_characters():
    assert hihell_encode("hello").tolist() == [0, 2, 3, 3, 4]
    with pytest.raises(
        DataError, match=r"character 'x' at position 2 of 'hix' is not in the hihell vocabulary"
    ):
        hihell_encode("hix")
