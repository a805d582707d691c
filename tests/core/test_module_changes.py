"""The sizes and weights a checked module binds: they follow the module when it changes after its first call
(each such case here raised a false ShapeError while the first call's weight and sizes were kept for good), and
they are bound whatever a method's first parameter is called."""

import copy

import pytest
import torch
from jaxtyping import Float
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from rnnshapes import Hidden, ShapeError, guard, shapecheck
from rnnshapes.models import HelloRNN


def _called() -> HelloRNN:
    model = HelloRNN()
    model(torch.randn(2, 6, 5))
    return model


def test_load_state_dict_with_assign_takes_the_new_weights_dtype():
    model = _called()
    guard(model)  # the layer's own check compares dtypes (shapecheck does not: a forward may cast)
    model(torch.randn(2, 6, 5))
    state = {k: v.double() for k, v in model.state_dict().items()}
    model.load_state_dict(state, assign=True)
    assert model(torch.randn(2, 6, 5, dtype=torch.float64))[0].dtype == torch.float64
    with pytest.raises(
        ShapeError, match=r"different dtype.*\n.*expected: float64 \(the dtype of rnn\.weight_ih_l0\)"
    ):
        model(torch.randn(2, 6, 5))


def test_double_with_overwritten_parameters_takes_the_new_dtype():
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        model = _called().double()
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)
    assert model(torch.randn(2, 6, 5, dtype=torch.float64))[0].dtype == torch.float64


def test_a_replaced_recurrent_layer_binds_its_own_sizes():
    model = _called()
    model.rnn = nn.RNN(5, 5, num_layers=2, batch_first=True)
    out = model(torch.randn(2, 6, 5), torch.zeros(2, 2, 5))  # two layers now
    assert out[1].shape == (2, 2, 5)
    with pytest.raises(ShapeError, match=r"axis 0 \(layers\*dirs\) should be 2"):
        model(torch.randn(2, 6, 5), torch.zeros(1, 2, 5))


def test_a_deep_copy_checks_against_its_own_weights():
    model = _called()
    clone = copy.deepcopy(model).double()
    assert clone(torch.randn(2, 6, 5, dtype=torch.float64))[0].dtype == torch.float64
    assert model(torch.randn(2, 6, 5))[0].dtype == torch.float32


def test_guard_reads_a_parametrized_weight_without_recomputing_it():
    model = nn.Sequential(nn.Linear(3, 4))
    weight_norm(model[0])
    with guard(model):
        assert model(torch.randn(2, 3)).shape == (2, 4)
        with pytest.raises(ShapeError, match=r"different dtype from the weights"):
            model(torch.randn(2, 3, dtype=torch.float64))


class NotCalledSelf(nn.Module):
    def __init__(this):
        super().__init__()
        this.batch_first = True
        this.rnn = nn.GRU(3, 4, num_layers=2, batch_first=True)

    @shapecheck
    def forward(this, x: Float[Tensor, "*seq input"], hidden: Hidden | None = None):
        return this.rnn(x, hidden)

    @staticmethod
    @shapecheck
    def first(x: Float[Tensor, "batch input"]) -> Float[Tensor, " input"]:
        return x[0]


def test_the_module_binds_its_sizes_whatever_its_first_parameter_is_called():
    with pytest.raises(
        ShapeError, match=r"(?s)expected: \(layers\*dirs=2, batch=2, hidden=4\).*from self\.rnn"
    ):
        NotCalledSelf()(torch.randn(2, 5, 3), torch.zeros(1, 2, 4))


def test_an_annotated_first_parameter_of_a_static_method_is_checked():
    assert NotCalledSelf.first(torch.randn(2, 3)).shape == (3,)
    with pytest.raises(ShapeError, match=r"argument 'x' has the wrong shape"):
        NotCalledSelf.first(torch.randn(3))


# --- a passed call signature is remembered: the same inputs are not checked twice, anything else still is ---


def test_a_remembered_signature_never_hides_a_different_mistake():
    model = _called()  # (2, 6, 5) passed once
    model(torch.randn(2, 6, 5))  # the same signature: remembered
    with pytest.raises(ShapeError, match=r"axis 2 \(input\) should be 5, got 4"):
        model(torch.randn(2, 6, 4))
    with pytest.raises(ShapeError, match=r"\[hidden-batch-first\]"):
        model(torch.randn(2, 6, 5), torch.zeros(2, 1, 5))


def test_weights_converted_in_place_are_part_of_the_signature():
    model = _called()  # float32 input passed with float32 weights
    guard(model)
    model(torch.randn(2, 6, 5))
    for p in model.parameters():
        p.data = p.data.double()  # what .double() does without overwriting the parameters
    with pytest.raises(ShapeError, match=r"different dtype from the weights"):
        model(torch.randn(2, 6, 5))


def test_the_layout_flag_is_part_of_the_signature():
    model = HelloRNN()
    x, h0 = torch.randn(2, 6, 5), torch.zeros(1, 2, 5)
    model(x, h0)  # batch_first: (batch=2, time=6, input=5) with its (1, batch=2, hidden) state: passed
    model.batch_first = model.rnn.batch_first = False
    with pytest.raises(ShapeError, match=r"axis 1 \(batch\) should be 6, got 2"):
        model(x, h0)  # the same tensors now read (time=2, batch=6, input=5): the state no longer fits


def test_a_return_value_is_checked_whenever_its_shape_is_new():
    sizes = iter([3, 3, 4])

    @shapecheck
    def head(x: Float[Tensor, "batch input"]) -> Float[Tensor, " batch"]:
        return torch.zeros(next(sizes))

    x = torch.randn(3, 5)
    head(x)
    head(x)  # the same input and output signatures: remembered
    with pytest.raises(ShapeError, match=r"argument 'return value' has the wrong shape"):
        head(x)  # the same input, an output of another shape: checked
