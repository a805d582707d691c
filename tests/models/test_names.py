"""NamesClassifier (lessons 13_1, 13_2): packed batches, both directions, every cell type."""

from collections.abc import Callable

import pytest
import torch
from torch.testing import assert_close

from rnnshapes.core._errors import ShapeError
from rnnshapes.models import NamesClassifier

NamesBatch = Callable[..., tuple[torch.Tensor, torch.Tensor]]  # the names_batch fixture (conftest.py)

SMALL = dict(vocab=128, embed=6, hidden=5, classes=4)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True), (3, False)])
def test_logits_are_batch_by_classes(
    names_batch: NamesBatch, cell: str, batch_first: bool, layers: int, bidirectional: bool
) -> None:
    model = NamesClassifier(
        cell=cell, layers=layers, bidirectional=bidirectional, batch_first=batch_first, **SMALL
    )
    for lengths in ([1], [3, 7, 2], [5, 5, 1, 9, 4, 2]):
        x, lengths_t = names_batch(lengths, batch_first)
        assert model(x, lengths_t).shape == (len(lengths), SMALL["classes"])


def test_defaults_are_the_course_13_2_model() -> None:
    model = NamesClassifier()
    assert isinstance(model.rnn, torch.nn.GRU)
    assert (model.rnn.num_layers, model.rnn.bidirectional, model.rnn.hidden_size) == (2, True, 100)
    assert (model.embedding.num_embeddings, model.embedding.padding_idx) == (128, 0)
    assert (model.head.in_features, model.head.out_features) == (2 * 100, 18)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_result_does_not_depend_on_padding_or_batch_mates(
    names_batch: NamesBatch, cell: str, batch_first: bool
) -> None:
    model = NamesClassifier(cell=cell, layers=2, bidirectional=True, batch_first=batch_first, **SMALL)
    lengths = [4, 9, 1, 6]
    x, lengths_t = names_batch(lengths, batch_first)
    logits = model(x, lengths_t)
    # more padding, and garbage instead of zeros in it: packing never reads past a length
    x_long, _ = names_batch(lengths, batch_first, time=15, pad=77)
    assert_close(model(x_long, lengths_t), logits)
    # each name alone, unpadded: the same logits, in the input's order (no sorting needed)
    time_axis = 1 if batch_first else 0
    for i, n in enumerate(lengths):
        alone = x.select(1 - time_axis, i).narrow(0, 0, n).unsqueeze(1 - time_axis)  # (1, n) or (n, 1)
        assert_close(model(alone, torch.tensor([n])), logits[i : i + 1])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_every_parameter_of_the_bidirectional_model_learns(names_batch: NamesBatch, cell: str) -> None:
    # The course classified from hidden[-1] (the backward direction only): the forward direction of the last
    # layer got no gradient at all.
    model = NamesClassifier(cell=cell, layers=2, bidirectional=True, **SMALL)
    x, lengths = names_batch([5, 3, 8, 2], True)
    loss = torch.nn.functional.cross_entropy(model(x, lengths), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    used = x[x != 0].unique()
    assert model.embedding.weight.grad is not None
    assert model.embedding.weight.grad[used].abs().sum(-1).gt(0).all()  # every character seen learns
    assert model.embedding.weight.grad[0].eq(0).all()  # the padding row never does


def test_head_reads_both_directions_of_the_last_layer(names_batch: NamesBatch) -> None:
    model = NamesClassifier(cell="gru", layers=2, bidirectional=True, **SMALL)
    x, lengths = names_batch([4, 6], True)
    features: list[torch.Tensor] = []
    model.head.register_forward_hook(lambda m, inp, out: features.append(inp[0]))
    model(x, lengths)
    _, h_n = model.rnn(
        torch.nn.utils.rnn.pack_padded_sequence(
            model.embedding(x), lengths, batch_first=True, enforce_sorted=False
        )
    )
    forward_last, backward_last = h_n[2], h_n[3]  # layer 1 forward, layer 1 backward: (batch, hidden)
    assert_close(features[0], torch.cat([forward_last, backward_last], dim=-1))


def test_lengths_longer_than_the_time_axis_raise_shape_error(names_batch: NamesBatch) -> None:
    # torch's pack_padded_sequence silently accepts them and reads steps that do not exist
    model = NamesClassifier(**SMALL)
    x, _ = names_batch([4, 6], True)
    with pytest.raises(ShapeError, match=r"(?s)holds impossible lengths.*every length in 1..time=6.*max 9"):
        model(x, torch.tensor([4, 9]))


def test_unknown_cell_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"cell must be one of \['gru', 'lstm', 'rnn'\], got 'transformer'"):
        NamesClassifier(cell="transformer")
