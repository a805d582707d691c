"""Every model rebuilds from its config: ``type(m)(**m.config)`` (training saves checkpoints this way)."""

from collections.abc import Callable

import pytest
import torch
from torch import nn

from rnnshapes.models import CharRNN, HelloEmbedding, HelloRNN, NamesClassifier, PackedEncoder

FACTORIES: list[Callable[[], nn.Module]] = [
    lambda: HelloRNN(input=6, hidden=3, classes=4, batch_first=False),
    lambda: HelloEmbedding(vocab=9, embed=2, hidden=7, classes=5, batch_first=False),
    lambda: NamesClassifier(
        cell="lstm", vocab=100, embed=5, hidden=6, layers=3, bidirectional=True, classes=7, dropout=0.25
    ),
    lambda: NamesClassifier(cell="rnn", layers=1, bidirectional=False, batch_first=False),
    lambda: CharRNN(alphabet="abc\n", embed=3, hidden=5, layers=2, dropout=0.1, batch_first=False),
    lambda: PackedEncoder(input=4, hidden=2, layers=2, bidirectional=True, batch_first=False),
]


@pytest.mark.parametrize(
    "factory", FACTORIES, ids=["hello", "embedding", "names-lstm", "names-13_1", "char", "packed"]
)
def test_config_round_trip(factory: Callable[[], nn.Module]) -> None:
    model = factory()
    config = model.config
    assert all(isinstance(v, int | float | bool | str) for v in config.values()), config
    rebuilt = type(model)(**config)
    assert rebuilt.config == config
    assert rebuilt.batch_first == model.batch_first
    # same architecture: every weight has a home of the same shape
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert str(rebuilt) == str(model)
    for (name, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("model_class", [HelloRNN, HelloEmbedding, NamesClassifier, CharRNN, PackedEncoder])
def test_defaults_are_batch_first_and_recorded(model_class: type[nn.Module]) -> None:
    model = model_class()
    assert model.batch_first is True and model.config["batch_first"] is True
    with pytest.raises(TypeError):
        model_class(5)  # keyword arguments only: configs never depend on argument order
