"""Property tests: valid configurations never raise; each single-axis slip raises naming that dimension;
and the fast path accepts/rejects exactly what jaxtyping + beartype do on plain annotations."""

import re

import pytest
import torch
from beartype import beartype
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jaxtyping import Float, jaxtyped
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from rnnshapes import Hidden, LSTMState, Packed, ShapeError, shapecheck


class Checked(nn.Module):
    def __init__(
        self, cell: str, input: int, hidden: int, layers: int, bidirectional: bool, batch_first: bool
    ):
        super().__init__()
        self.batch_first = batch_first
        kind = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = kind(
            input, hidden, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first
        )

    @shapecheck
    def forward(
        self, x: Float[Tensor, "*seq input"], hx: Hidden | LSTMState
    ) -> tuple[Float[Tensor, "*seq dirs*hidden"], Hidden | LSTMState]:
        return self.rnn(x, hx)


@st.composite
def configs(draw):
    cell = draw(st.sampled_from(["rnn", "gru", "lstm"]))
    layers = draw(st.integers(1, 3))
    bidirectional = draw(st.booleans())
    ld = layers * (2 if bidirectional else 1)
    # pairwise-distinct sizes (and distinct from layers*dirs) so a swapped axis cannot pass by coincidence
    sizes = draw(
        st.lists(st.integers(1, 9), min_size=4, max_size=4, unique=True).filter(lambda s: ld not in s)
    )
    batch, time, input, hidden = sizes
    return dict(
        cell=cell,
        layers=layers,
        bidirectional=bidirectional,
        batch_first=draw(st.booleans()),
        batch=batch,
        time=time,
        input=input,
        hidden=hidden,
        ld=ld,
    )


def _build(c):
    torch.manual_seed(0)
    model = Checked(c["cell"], c["input"], c["hidden"], c["layers"], c["bidirectional"], c["batch_first"])
    seq = (c["batch"], c["time"]) if c["batch_first"] else (c["time"], c["batch"])
    x = torch.randn(*seq, c["input"])
    h = torch.zeros(c["ld"], c["batch"], c["hidden"])
    hx = (h, h.clone()) if c["cell"] == "lstm" else h
    return model, x, hx


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(configs())
def test_valid_configurations_never_raise(c):
    model, x, hx = _build(c)
    out, _ = model(x, hx)
    assert out.shape[-1] == c["hidden"] * (2 if c["bidirectional"] else 1)


def _perturb(t: Tensor, axis: int) -> Tensor:
    shape = list(t.shape)
    shape[axis] += 1
    return torch.zeros(shape)


SLIPS = ["x.batch", "x.input", "h.layers*dirs", "h.batch", "h.hidden", "c.layers*dirs", "c.batch", "c.cell"]


@SETTINGS
@given(configs(), st.sampled_from(SLIPS))
def test_each_single_axis_slip_names_its_dimension(c, which):
    target, dim = which.split(".")
    assume(target != "c" or c["cell"] == "lstm")  # only an LSTM has a cell state
    model, x, hx = _build(c)
    h, cs = hx if isinstance(hx, tuple) else (hx, None)
    state_axis = {"layers*dirs": 0, "batch": 1, "hidden": 2, "cell": 2}
    if target == "x":
        x = _perturb(x, {"batch": 0 if c["batch_first"] else 1, "input": 2}[dim])
    elif target == "h":
        h = _perturb(h, state_axis[dim])
    else:
        assert cs is not None
        cs = _perturb(cs, state_axis[dim])
    hx = (h, cs) if cs is not None else h
    with pytest.raises(ShapeError) as info:
        model(x, hx)
    mismatch = next(line for line in str(info.value).splitlines() if "mismatch:" in line)
    assert re.search(rf"axis \d \({re.escape(dim)}\)", mismatch), str(info.value)


class PackedChecked(nn.Module):
    """The same layers over a packed batch: batch is bound from the PackedSequence, not from an axis."""

    def __init__(self, c):
        super().__init__()
        self.batch_first = c["batch_first"]
        kind = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[c["cell"]]
        self.rnn = kind(
            c["input"],
            c["hidden"],
            num_layers=c["layers"],
            bidirectional=c["bidirectional"],
            batch_first=c["batch_first"],
        )

    @shapecheck
    def forward(self, x: Packed[PackedSequence, "input"], hx: Hidden | LSTMState | None = None):
        return self.rnn(x, hx)


@SETTINGS
@given(configs(), st.sampled_from([None, "h.batch", "h.layers*dirs", "x.input"]), st.data())
def test_packed_batches_bind_batch_and_slips_name_their_dimension(c, which, data):
    torch.manual_seed(0)
    model = PackedChecked(c)
    lengths = torch.tensor(
        data.draw(st.lists(st.integers(1, c["time"]), min_size=c["batch"], max_size=c["batch"]))
    )
    features = c["input"] + (1 if which == "x.input" else 0)
    padded = torch.randn(c["batch"], c["time"], features)  # (batch, time, input)
    if not c["batch_first"]:
        padded = padded.transpose(0, 1)  # (time, batch, input)
    packed = pack_padded_sequence(padded, lengths, batch_first=c["batch_first"], enforce_sorted=False)
    h = torch.zeros(c["ld"], c["batch"], c["hidden"])
    if which in ("h.batch", "h.layers*dirs"):
        h = _perturb(h, {"h.batch": 1, "h.layers*dirs": 0}[which])
    hx = (h, h.clone()) if c["cell"] == "lstm" else h
    if which is None:
        _, h_n = model(packed, hx)
        assert (h_n[0] if isinstance(h_n, tuple) else h_n).shape == (c["ld"], c["batch"], c["hidden"])
        return
    with pytest.raises(ShapeError) as info:
        model(packed, hx)
    dim = which.split(".")[1]
    mismatch = next(line for line in str(info.value).splitlines() if "mismatch:" in line)
    assert re.search(rf"axis \d \({re.escape(dim)}\)", mismatch), str(info.value)
    if dim == "batch":
        assert "from x (packed" in str(info.value) or "batch_sizes" in str(info.value), str(info.value)


# --- the fast path agrees with jaxtyping + beartype ------------------------------------------------------

NAMES = ["a", "b", "c"]
dim_token = st.one_of(st.sampled_from(NAMES), st.sampled_from(["2", "3"]))


@st.composite
def annotated_calls(draw):
    dims1 = draw(st.lists(dim_token, min_size=1, max_size=3))
    dims2 = draw(st.lists(st.one_of(dim_token, st.just("a*b"), st.just("a+1")), min_size=1, max_size=3))
    if any(t in ("a*b", "a+1") for t in dims2):  # jaxtyping needs expression symbols bound by the first arg
        dims1 = sorted(set(dims1) | {"a", "b"})
    shape1 = draw(st.lists(st.integers(1, 4), min_size=len(dims1) - 1, max_size=len(dims1) + 1))
    shape2 = draw(st.lists(st.integers(1, 4), min_size=len(dims2) - 1, max_size=len(dims2) + 1))
    return " ".join(dims1), " ".join(dims2), tuple(shape1), tuple(shape2)


@settings(max_examples=300, deadline=None)
@given(annotated_calls())
def test_fast_path_agrees_with_jaxtyping_beartype(call):
    d1, d2, s1, s2 = call

    def f(x: Float[Tensor, d1], y: Float[Tensor, d2]) -> None:  # noqa: F821
        return None

    ours = shapecheck(f)
    reference = jaxtyped(typechecker=beartype)(f)
    x, y = torch.zeros(s1), torch.zeros(s2)
    try:
        reference(x, y)
        reference_ok = True
    except Exception:
        reference_ok = False
    try:
        ours(x, y)
        ours_ok = True
    except ShapeError:
        ours_ok = False
    assert ours_ok == reference_ok, (d1, d2, s1, s2)
