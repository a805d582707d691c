"""nn.DataParallel's hidden-state trap, reproduced on the CPU.

DataParallel needs CUDA to scatter, so these tests hand each replica what DataParallel would: the chunks of
every tensor argument on dim 0, to a copy of the model that torch marks as a replica (``_is_replica``, set by
``Module._replicate_for_data_parallel``). ``scripts/gpu-check`` runs the real thing where a GPU is lent.
"""

import pytest
import torch
from jaxtyping import Float
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnshapes import Hidden, ShapeError, guard, shapecheck


class Classifier(nn.Module):
    """h0 handed in from outside: the pattern DataParallel breaks."""

    def __init__(self):
        super().__init__()
        self.batch_first = True
        self.rnn = nn.GRU(3, 5, num_layers=2, batch_first=True)

    @shapecheck
    def forward(self, x: Float[Tensor, "*seq input"], h0: Hidden) -> Hidden:
        return self.rnn(x, h0)[1]


class StateInside(Classifier):
    """The fix: the state is built inside forward from the input's own batch."""

    @shapecheck
    def forward(self, x: Float[Tensor, "*seq input"]) -> Hidden:
        h0 = torch.zeros(2, x.size(0), 5, device=x.device)
        return self.rnn(x, h0)[1]


def _replica(model: nn.Module) -> nn.Module:
    """What torch's replicate() makes of a module for one device: every module copied and marked
    ``_is_replica``, its parameters held as plain (non-leaf) tensor attributes."""
    replica = model._replicate_for_data_parallel()
    for name, child in model._modules.items():
        replica._modules[name] = _replica(child) if child is not None else None
    for key, param in model._parameters.items():
        if param is not None:
            setattr(replica, key, param * 1)  # a copy that is no Parameter, as Broadcast makes
    return replica


def _scatter(*args, n: int = 2):
    """What DataParallel hands replica 0: the first chunk of every tensor argument on dim 0."""
    return tuple(a.chunk(n, dim=0)[0] if isinstance(a, torch.Tensor) else a for a in args)


def test_a_state_scattered_on_the_layers_axis_is_explained():
    model = Classifier()
    x, h0 = torch.randn(4, 6, 3), torch.zeros(2, 4, 5)
    assert model(x, h0).shape == (2, 4, 5)  # one device: fine
    with pytest.raises(
        ShapeError,
        match=r"(?s)argument 'h0'.*\[dataparallel-hidden\] this module runs in an nn\.DataParallel replica.*dim 0 is the layers axis.*build the state inside forward.*DistributedDataParallel",
    ):
        _replica(model)(*_scatter(x, h0))  # x: (2, 6, 3), h0: (1, 4, 5)


def test_guarded_layers_get_the_same_hint_and_lstm_pairs_too():
    lstm = nn.LSTM(3, 5, num_layers=2)
    guard(lstm)
    replica = _replica(lstm)
    state = (torch.zeros(2, 4, 5), torch.zeros(2, 4, 5))
    with pytest.raises(ShapeError, match=r"(?s)argument 'hx\[0\]'.*\[dataparallel-hidden\]"):
        replica(torch.randn(6, 2, 3), tuple(s.chunk(2, dim=0)[0] for s in state))


def test_a_packed_batch_scattered_field_by_field_is_explained():
    gru = nn.GRU(3, 5)
    guard(gru)
    packed = pack_padded_sequence(torch.randn(4, 6, 3), torch.tensor([6, 5, 3, 2]), batch_first=True)
    data, batch_sizes = packed.data.chunk(2, dim=0)[0], packed.batch_sizes.chunk(2, dim=0)[0]
    scattered = type(packed)(data, batch_sizes, None, None)
    with pytest.raises(
        ShapeError, match=r"(?s)does not match its batch_sizes.*\[dataparallel-hidden\].*field by field"
    ):
        _replica(gru)(scattered)


def test_the_state_built_inside_forward_passes_in_every_replica():
    model = StateInside()
    x = torch.randn(4, 6, 3)
    for chunk in x.chunk(2, dim=0):
        assert _replica(model)(chunk).shape == (2, 2, 5)
    guard(model.rnn)
    assert _replica(model)(x.chunk(2, dim=0)[1]).shape == (2, 2, 5)


def test_a_replica_reads_its_own_weights_not_the_originals():
    model = StateInside()
    guard(model)  # the layer's check compares the input's dtype with the weights it holds
    model(torch.randn(2, 6, 3))  # the original reads its sizes and weights first
    replica = _replica(model)
    replica.rnn.weight_ih_l0 = (
        model.rnn.weight_ih_l0.detach().double()
    )  # stands in for a copy on another device
    with pytest.raises(ShapeError, match=r"different dtype from the weights"):
        replica(torch.randn(2, 6, 3))  # float32 input against the replica's own (float64) weight
