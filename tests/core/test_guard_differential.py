"""Differential fuzz of ``guard`` and ``shapecheck`` against torch itself.

The rule under test: *never refuse a call that torch runs correctly unless the call itself proves a mistake*.
Every drawn call is first run on an unguarded copy of the model (same weights, ``copy.deepcopy`` before
guarding): only calls torch runs count as valid. Then

1. no false alarm: the guarded (or ``shapecheck``-ed) model accepts every valid call, and its outputs, state
   included, are bit-identical (``torch.equal``) to the unguarded model's;
2. no miss: a valid call to one layer with one tensor argument changed (one axis size, one axis more or
   fewer, its dtype, its device (meta stands in for another device), or one index value of an embedding's
   input): when the unguarded torch call raises, the guarded call raises ``ShapeError`` first (never
   torch's own error), and the message names the argument (``argument 'input'``, ``argument 'hx[1]'``, or
   the argument the mismatched size was bound from); the same guarded model then still runs the valid call.
   When torch runs the changed call, nothing is required, not even where the call proves a mistake (torch
   2.13 runs a packed batch with an hx of extra rows, an LSTM cell state of another dtype, ...).

Every test is parametrized by family (rnn, cell, 13_1, ...), so that each kind of failure shows on its own.

Runs:
    fast (part of the suite): 6 to 40 derandomized examples per test, about 4 CPU-seconds in all once every
    test passes (plus the torch._dynamo import that the first ``guard()`` of a run pays); while tests fail,
    hypothesis shrinks each failure to a minimal call, which takes longer::

        pytest tests/core/test_guard_differential.py -p no:randomly -q

    long (fresh random examples each run; failures print a ``@reproduce_failure`` blob)::

        RNNSHAPES_FUZZ_EXAMPLES=2000 pytest tests/core/test_guard_differential.py -p no:randomly -q

    ``RNNSHAPES_FUZZ_EXAMPLES=N`` sets the examples per test; with it set, ``RNNSHAPES_FUZZ_DERANDOMIZE=1``
    keeps the examples fixed (reproducible long run).
"""

import collections
import contextlib
import copy
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from jaxtyping import Float
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from rnnshapes import Hidden, LSTMState, Packed, ShapeError, checks, guard, shapecheck

torch.set_num_threads(1)  # a shared 2-core machine; the suite's conftest does the same per test

pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN:UserWarning",
    "ignore:There is a performance drop because we have not yet implemented the batching rule:UserWarning",
    "ignore:Casting complex values to real discards the imaginary part:UserWarning",
)

_LONG = os.environ.get("RNNSHAPES_FUZZ_EXAMPLES")


def _settings(fast_examples: int) -> settings:
    examples = int(_LONG) if _LONG else fast_examples
    derandomize = not _LONG or os.environ.get("RNNSHAPES_FUZZ_DERANDOMIZE", "") == "1"
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


# ---------------------------------------------------------------------------------------------------------
# A drawn call, and the two ways to run it
# ---------------------------------------------------------------------------------------------------------

NT = collections.namedtuple("NT", "h c")  # an LSTM state as a namedtuple
FLOATS = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


@dataclass
class Case:
    """One call of one model. ``tensors`` and ``build`` exist for single-layer cases (perturbed in part 2)."""

    label: str
    model: nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    mode: str = "guard"  # "guard": guard(model, **guard_kw); "shapecheck": the model's forward is checked
    guard_kw: dict[str, Any] = field(default_factory=dict)
    context: Callable[[], Any] = contextlib.nullcontext
    # single layer only: the tensors of the call by slot, how the call is built from them, and for each slot
    # the argument name a ShapeError must use
    tensors: dict[str, Tensor] = field(default_factory=dict)
    build: Callable[[dict[str, Tensor]], tuple[tuple[Any, ...], dict[str, Any]]] | None = None
    arg_of: dict[str, str] = field(default_factory=dict)
    vocab: int = 0  # an embedding's rows (index perturbations)

    def __repr__(self) -> str:
        shapes = {k: (tuple(v.shape), str(v.dtype).rpartition(".")[2]) for k, v in self.tensors.items()}
        return f"Case({self.label}, mode={self.mode}, guard_kw={self.guard_kw}, tensors={shapes})"


def _run_torch(case: Case, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The unguarded model (a deep copy with the same weights) on the call."""
    ref = copy.deepcopy(case.model)
    with case.context():
        if case.mode == "shapecheck":
            with checks(False):
                return ref(*args, **kwargs)
        return ref(*args, **kwargs)


def _run_checked(case: Case, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The checked model (a fresh deep copy, so every run starts from the same weights) on the call."""
    model = copy.deepcopy(case.model)
    if case.mode == "shapecheck":
        with case.context():
            return model(*args, **kwargs)
    with guard(model, **case.guard_kw), case.context():
        return model(*args, **kwargs)


def _assert_same(got: Any, want: Any, path: str = "output") -> None:
    if isinstance(want, PackedSequence):
        assert isinstance(got, PackedSequence), path
        for name in ("data", "batch_sizes", "sorted_indices", "unsorted_indices"):
            _assert_same(getattr(got, name), getattr(want, name), f"{path}.{name}")
    elif isinstance(want, Tensor):
        assert isinstance(got, Tensor), path
        assert got.dtype == want.dtype and got.shape == want.shape, (path, got.dtype, want.dtype)
        assert torch.equal(got, want), f"{path} differs from torch's"
    elif isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{path}[{i}]")
    else:
        assert got == want, path


def _check_no_false_alarm(case: Case) -> None:
    note(repr(case))
    try:
        want = _run_torch(case, case.args, case.kwargs)
    except Exception as e:  # pragma: no cover - a strategy bug, not a finding
        raise AssertionError(f"strategy bug: torch refuses the 'valid' call {case!r}: {e}") from e
    got = _run_checked(case, case.args, case.kwargs)  # a ShapeError here is a false alarm
    _assert_same(got, want)


# ---------------------------------------------------------------------------------------------------------
# Single layers: nn.RNN/GRU/LSTM, cells, Embedding, Linear
# ---------------------------------------------------------------------------------------------------------


class Wrap(nn.Module):
    """The layer inside a container, so that guard binds batch from the container's input."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.layer(*args, **kwargs)


# torch's documented output of a recurrent layer (a module-level alias: pyflakes reads strings inside an
# annotation as names)
RNNOutput = Float[Tensor, "*seq dirs*hidden"] | Packed[PackedSequence, "dirs*hidden"]


class CheckedRNN(nn.Module):
    """A shapecheck-ed forward written from torch's documented shapes (batched or packed input)."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.rnn = rnn

    @shapecheck
    def forward(
        self,
        input: Float[Tensor, "*seq input"] | Packed[PackedSequence, "input"],
        hx: Hidden | LSTMState | None = None,
    ) -> tuple[RNNOutput, Hidden | LSTMState]:
        return self.rnn(input, hx)


def _lstm_state(form: str, h: Tensor, c: Tensor) -> Any:
    return {"tuple": (h, c), "list": [h, c], "namedtuple": NT(h, c)}[form]


def _call(x: Any, hx: Any, hx_as_kwarg: bool, input_as_kwarg: bool) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``layer(x)``, ``layer(x, hx)``, ``layer(x, hx=hx)`` or ``layer(input=x, hx=hx)``."""
    if hx is None:
        return ((), {"input": x}) if input_as_kwarg else ((x,), {})
    if input_as_kwarg:
        return (), {"input": x, "hx": hx}
    return ((x,), {"hx": hx}) if hx_as_kwarg else ((x, hx), {})


# guard's batch_axis: None (the default) or the axis the model's input really has (a wrong declared axis
# would be the user's own mistake)
BATCH_AXIS = st.sampled_from([None, "declared"])


@st.composite
def rnn_cases(draw: st.DrawFn, checked: bool = False) -> Case:
    """nn.RNN/GRU/LSTM with every constructor option, on batched, unbatched and packed input."""
    kind = draw(st.sampled_from(["RNN", "GRU", "LSTM"]))
    layers = draw(st.integers(1, 3))
    bidirectional = draw(st.booleans())
    batch_first = draw(st.booleans())
    bias = draw(st.booleans())
    dropout = draw(st.sampled_from([0.0, 0.5])) if layers > 1 else 0.0
    n_in, hidden = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    proj = draw(st.integers(0, hidden - 1)) if kind == "LSTM" and hidden > 1 else 0
    dtype = draw(st.sampled_from(FLOATS))
    batch, time = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    form = draw(st.sampled_from(["batched", "packed"] if checked else ["batched", "unbatched", "packed"]))
    given_state = draw(st.booleans())
    state_form = draw(
        st.sampled_from(["tuple", "namedtuple"] if checked else ["tuple", "list", "namedtuple"])
    )
    hx_as_kwarg = draw(st.booleans())
    input_as_kwarg = hx_as_kwarg and draw(st.booleans())
    where = "checked" if checked else draw(st.sampled_from(["layer", "wrapped"]))
    declared = draw(BATCH_AXIS) == "declared"
    # allow_unbatched=False refuses unbatched input on purpose: drawn only where the input is batched
    guard_kw = (
        {}
        if checked
        else {
            "allow_unbatched": True if form == "unbatched" else draw(st.booleans()),
            "batch_axis": (0 if batch_first else 1) if declared else None,
        }
    )

    torch.manual_seed(0)
    extra = {"proj_size": proj} if kind == "LSTM" else {}
    rnn = getattr(nn, kind)(
        n_in, hidden, num_layers=layers, bias=bias, batch_first=batch_first, dropout=dropout,
        bidirectional=bidirectional, dtype=dtype, **extra,
    ).eval()  # fmt: skip
    ld, h_out = layers * (2 if bidirectional else 1), proj or hidden

    tensors: dict[str, Tensor] = {}
    pack: dict[str, Any] = {}
    if form == "batched":
        tensors["input"] = torch.randn(
            (batch, time, n_in) if batch_first else (time, batch, n_in), dtype=dtype
        )
    elif form == "unbatched":
        tensors["input"] = torch.randn(time, n_in, dtype=dtype)
    else:
        lengths = draw(st.lists(st.integers(1, time), min_size=batch, max_size=batch))
        pack["enforce_sorted"] = draw(st.booleans())
        if pack["enforce_sorted"]:
            lengths = sorted(lengths, reverse=True)
        pack["lengths"] = torch.tensor(lengths)
        pack["batch_first"] = draw(st.booleans())  # the padded tensor's layout, not the layer's
        shape = (batch, max(lengths), n_in) if pack["batch_first"] else (max(lengths), batch, n_in)
        tensors["input"] = torch.randn(shape, dtype=dtype)
    if given_state:
        lead = (ld,) if form == "unbatched" else (ld, batch)
        tensors["h"] = torch.randn(*lead, h_out, dtype=dtype)
        if kind == "LSTM":
            tensors["c"] = torch.randn(*lead, hidden, dtype=dtype)

    def build(t: dict[str, Tensor]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        x: Any = t["input"]
        if form == "packed":
            x = pack_padded_sequence(x, pack["lengths"], pack["batch_first"], pack["enforce_sorted"])
        hx = t.get("h")
        if hx is not None and kind == "LSTM":
            hx = _lstm_state(state_form, hx, t["c"])
        return _call(x, hx, hx_as_kwarg, input_as_kwarg)

    model: nn.Module = {"layer": rnn, "wrapped": Wrap(rnn), "checked": CheckedRNN(rnn)}[where]
    args, kwargs = build(tensors)
    label = (
        f"{kind}(input={n_in}, hidden={hidden}, layers={layers}, bidirectional={bidirectional}, "
        f"batch_first={batch_first}, bias={bias}, dropout={dropout}, proj_size={proj}, {dtype}) {form} "
        f"{pack if form == 'packed' else ''} state={'given ' + state_form if given_state else 'None'} "
        f"hx_as_kwarg={hx_as_kwarg} input_as_kwarg={input_as_kwarg} {where}"
    )
    return Case(
        label, model, args, kwargs, mode="shapecheck" if checked else "guard", guard_kw=guard_kw,
        tensors=tensors, build=build, arg_of={"input": "input", "h": "hx", "c": "hx"},
    )  # fmt: skip


@st.composite
def cell_cases(draw: st.DrawFn) -> Case:
    """nn.RNNCell/GRUCell/LSTMCell, batched (batch, input) and unbatched (input,)."""
    kind = draw(st.sampled_from(["RNNCell", "GRUCell", "LSTMCell"]))
    n_in, hidden, batch = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    bias = draw(st.booleans())
    dtype = draw(st.sampled_from(FLOATS))
    batched = draw(st.booleans())
    given_state = draw(st.booleans())
    state_form = draw(st.sampled_from(["tuple", "list", "namedtuple"]))
    hx_as_kwarg = draw(st.booleans())
    input_as_kwarg = hx_as_kwarg and draw(st.booleans())
    where = draw(st.sampled_from(["layer", "wrapped"]))
    batch_axis = 0 if batched and draw(BATCH_AXIS) == "declared" else None

    torch.manual_seed(0)
    cell = getattr(nn, kind)(n_in, hidden, bias=bias, dtype=dtype)
    lead = (batch,) if batched else ()
    tensors = {"input": torch.randn(*lead, n_in, dtype=dtype)}
    if given_state:
        tensors["h"] = torch.randn(*lead, hidden, dtype=dtype)
        if kind == "LSTMCell":
            tensors["c"] = torch.randn(*lead, hidden, dtype=dtype)

    def build(t: dict[str, Tensor]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        hx = t.get("h")
        if hx is not None and kind == "LSTMCell":
            hx = _lstm_state(state_form, hx, t["c"])
        return _call(t["input"], hx, hx_as_kwarg, input_as_kwarg)

    args, kwargs = build(tensors)
    label = (
        f"{kind}(input={n_in}, hidden={hidden}, bias={bias}, {dtype}) batched={batched} "
        f"state={'given ' + state_form if given_state else 'None'} hx_as_kwarg={hx_as_kwarg} "
        f"input_as_kwarg={input_as_kwarg} {where}"
    )
    model = cell if where == "layer" else Wrap(cell)
    return Case(
        label, model, args, kwargs, guard_kw={"batch_axis": batch_axis}, tensors=tensors, build=build,
        arg_of={"input": "input", "h": "hx", "c": "hx"},
    )  # fmt: skip


def _shape(draw: st.DrawFn, max_rank: int, min_rank: int = 0) -> tuple[int, ...]:
    rank = draw(st.integers(min_rank, max_rank))
    return tuple(draw(st.lists(st.integers(0, 3), min_size=rank, max_size=rank)))


@st.composite
def embedding_cases(draw: st.DrawFn) -> Case:
    """nn.Embedding: int32/int64 indices of any rank (0-D included), padding_idx, max_norm."""
    vocab, dim = draw(st.integers(1, 8)), draw(st.integers(1, 4))
    padding_idx = draw(st.one_of(st.none(), st.integers(-vocab, vocab - 1)))
    max_norm = draw(st.sampled_from([None, 1.0]))
    dtype = draw(st.sampled_from([torch.int64, torch.int32]))
    shape = _shape(draw, 3)
    torch.manual_seed(0)
    emb = nn.Embedding(vocab, dim, padding_idx=padding_idx, max_norm=max_norm)
    x = torch.randint(0, vocab, shape, dtype=dtype)
    kw = draw(st.booleans())
    label = (
        f"Embedding({vocab}, {dim}, padding_idx={padding_idx}, max_norm={max_norm}) indices {shape} {dtype}"
    )
    return _one_input_case(f"{label} input_as_kwarg={kw}", emb, x, kw, vocab)


def _one_input_case(label: str, module: nn.Module, x: Tensor, as_kwarg: bool, vocab: int = 0) -> Case:
    def build(t: dict[str, Tensor]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return _call(t["input"], None, False, as_kwarg)

    args, kwargs = build({"input": x})
    return Case(
        label, module, args, kwargs, tensors={"input": x}, build=build, arg_of={"input": "input"}, vocab=vocab
    )


@st.composite
def linear_cases(draw: st.DrawFn) -> Case:
    """nn.Linear on 1-D, 2-D and 3-D+ inputs, real and complex dtypes."""
    n_in, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    bias = draw(st.booleans())
    dtype = draw(st.sampled_from([*FLOATS, torch.complex64]))
    shape = (*_shape(draw, 3), n_in)
    torch.manual_seed(0)
    lin = nn.Linear(n_in, n_out, bias=bias, dtype=dtype)
    x = torch.randn(shape, dtype=dtype)
    kw = draw(st.booleans())
    return _one_input_case(
        f"Linear({n_in}, {n_out}, bias={bias}, {dtype}) input {shape} input_as_kwarg={kw}", lin, x, kw
    )


# each family of single layers: its strategy and its share of the fast run's examples (part 1, part 2)
SINGLE = {
    "rnn": (rnn_cases(), 40, 40),
    "rnn-shapecheck": (rnn_cases(checked=True), 20, 20),
    "cell": (cell_cases(), 25, 25),
    "embedding": (embedding_cases(), 12, 15),
    "linear": (linear_cases(), 12, 12),
}


# ---------------------------------------------------------------------------------------------------------
# Containers: models as people write them
# ---------------------------------------------------------------------------------------------------------


class Course13_1(nn.Module):
    """PyTorchZeroToAll 13_1: (batch, time) indices in, ``input.t()`` inside, a time-first GRU, fc(hidden)."""

    def __init__(self, vocab: int, hidden: int, classes: int, layers: int = 1):
        super().__init__()
        self.hidden_size, self.n_layers = hidden, layers
        self.embedding = nn.Embedding(vocab, hidden)
        self.gru = nn.GRU(hidden, hidden, layers)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, input: Tensor) -> Tensor:
        batch_size = input.size(0)
        input = input.t()  # (time, batch)
        embedded = self.embedding(input)
        hidden = torch.zeros(self.n_layers, batch_size, self.hidden_size)
        output, hidden = self.gru(embedded, hidden)
        return self.fc(hidden)


class TimeFirstInterface(nn.Module):
    """The mirror of 13_1: (time, batch) indices in, transposed inside for a batch-first RNN given its h0."""

    def __init__(self, kind: str, vocab: int, hidden: int, classes: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.rnn = getattr(nn, kind)(hidden, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, input: Tensor) -> Tensor:
        h0 = torch.zeros(1, input.size(1), self.rnn.hidden_size)
        state = (h0, h0.clone()) if isinstance(self.rnn, nn.LSTM) else h0
        out, _ = self.rnn(self.embedding(input.t()), state)  # (batch, time, hidden)
        return self.fc(out[:, -1])


class OneSequence(nn.Module):
    """A char-RNN fed ONE sequence of indices ``(time,)``, given the batch axis of 1 inside."""

    def __init__(self, kind: str, vocab: int, hidden: int, batch_first: bool):
        super().__init__()
        self.batch_first = batch_first
        self.embedding = nn.Embedding(vocab, hidden)
        self.rnn = getattr(nn, kind)(hidden, hidden, batch_first=batch_first)
        self.fc = nn.Linear(hidden, vocab)

    def forward(self, seq: Tensor) -> Tensor:
        x = self.embedding(seq).unsqueeze(0 if self.batch_first else 1)  # a batch of one sequence
        out, _ = self.rnn(x)
        return self.fc(out)


class PackedTimeFirst(nn.Module):
    """A batch-first padded batch of indices, packed with batch_first=True, for a time-first GRU."""

    def __init__(self, vocab: int, hidden: int, classes: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.gru = nn.GRU(hidden, hidden)  # time-first: packing makes its layout irrelevant
        self.fc = nn.Linear(hidden, classes)

    def forward(self, padded: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.embedding(padded), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return self.fc(h[-1])


class HelloRNN(nn.Module):
    """PyTorchZeroToAll 12_2: ``forward(hidden, x)``: the state comes first, then a batch-first input."""

    def __init__(self, n_in: int, hidden: int, layers: int):
        super().__init__()
        self.rnn = nn.RNN(n_in, hidden, num_layers=layers, batch_first=True)

    def forward(self, hidden: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        out, hidden = self.rnn(x, hidden)
        return hidden, out.reshape(-1, out.size(-1))


class Classifier(nn.Module):
    """Embedding or Linear -> RNN/GRU/LSTM -> Linear head on the last step or the last hidden state."""

    def __init__(self, kind: str, vocab: int, n_in: int, hidden: int, classes: int, batch_first: bool,
                 embed: bool, read: str):  # fmt: skip
        super().__init__()
        self.batch_first, self.read = batch_first, read
        self.front = nn.Embedding(vocab, n_in) if embed else nn.Linear(n_in, n_in)
        self.rnn = getattr(nn, kind)(n_in, hidden, batch_first=batch_first)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        out, state = self.rnn(self.front(x))
        if self.read == "state":
            h = state[0] if isinstance(state, tuple) else state
            return self.head(h[-1])
        return self.head(out[:, -1] if self.batch_first else out[-1])


class EncoderDecoder(nn.Module):
    """Two recurrent layers of different layouts; the one registered first is not the one called first."""

    def __init__(self, n_in: int, hidden: int, enc_batch_first: bool):
        super().__init__()
        self.enc_batch_first = enc_batch_first
        self.decoder = nn.GRU(hidden, hidden, batch_first=not enc_batch_first)  # registered first
        self.encoder = nn.GRU(n_in, hidden, batch_first=enc_batch_first)

    def forward(self, x: Tensor) -> Tensor:
        out, h = self.encoder(x, None)
        out = out.transpose(0, 1)  # into the decoder's layout
        out, _ = self.decoder(out, h)
        return out


class WordsAsBatch(nn.Module):
    """Characters of each word through a char-GRU with words folded into its batch, then a word-GRU."""

    def __init__(self, vocab: int, n_in: int, hidden: int):
        super().__init__()
        self.chars = nn.Embedding(vocab, n_in)
        self.char_rnn = nn.GRU(n_in, hidden, batch_first=True)
        self.word_rnn = nn.GRU(hidden, hidden, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:  # (batch, words, chars)
        b, w, c = x.shape
        _, h = self.char_rnn(self.chars(x.reshape(b * w, c)))  # batch b*w on purpose
        out, _ = self.word_rnn(h[-1].reshape(b, w, -1))
        return out


class PackedGRU(nn.GRU):
    """An RNNBase subclass with its own forward: ``(x, lengths)``, packed inside."""

    def forward(self, x: Tensor, lengths: Tensor) -> Any:  # type: ignore[override]
        packed = pack_padded_sequence(x, lengths, batch_first=self.batch_first, enforce_sorted=False)
        return super().forward(packed)


class MixedPrecision(nn.Module):
    """Linear -> RNN -> Linear (run under CPU autocast to bfloat16)."""

    def __init__(self, kind: str, n_in: int, hidden: int, classes: int, batch_first: bool):
        super().__init__()
        self.front = nn.Linear(n_in, n_in)
        self.rnn = getattr(nn, kind)(n_in, hidden, batch_first=batch_first)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(self.front(x))
        return self.head(out)


def _autocast() -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16)


CONTAINERS = ["sequential", "classifier", "13_1", "time-first-interface", "one-sequence", "packed-time-first",
              "hello", "enc-dec", "words-as-batch", "packed-gru", "autocast"]  # fmt: skip


@st.composite
def container_cases(draw: st.DrawFn, family: str) -> Case:
    vocab, n_in, hidden, classes = (draw(st.integers(2, 6)) for _ in range(4))
    batch, time = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["RNN", "GRU", "LSTM"]))
    batch_first = draw(st.booleans())
    torch.manual_seed(0)
    context: Callable[[], Any] = contextlib.nullcontext
    if family == "sequential":
        embed = draw(st.booleans())
        if embed:
            model: nn.Module = nn.Sequential(nn.Embedding(vocab, n_in), nn.Linear(n_in, classes))
            x = torch.randint(0, vocab, _shape(draw, 3))
        else:
            model = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, classes))
            x = torch.randn(*_shape(draw, 3), n_in)
        if draw(st.booleans()):
            context = _autocast
        args: tuple[Any, ...] = (x,)
        label = f"Sequential embed={embed} input {tuple(x.shape)} autocast={context is _autocast}"
    elif family == "classifier":
        embed, read = draw(st.booleans()), draw(st.sampled_from(["last-step", "state"]))
        model = Classifier(kind, vocab, n_in, hidden, classes, batch_first, embed, read)
        seq = (batch, time) if batch_first else (time, batch)
        x = torch.randint(0, vocab, seq) if embed else torch.randn(*seq, n_in)
        args = (x,)
        label = (
            f"Classifier {kind} batch_first={batch_first} embed={embed} read={read} input {tuple(x.shape)}"
        )
    elif family == "13_1":
        layers = draw(st.integers(1, 2))
        model = Course13_1(vocab, hidden, classes, layers)
        args = (torch.randint(0, vocab, (batch, time)),)
        label = f"Course13_1(layers={layers}) input (batch={batch}, time={time})"
    elif family == "time-first-interface":
        model = TimeFirstInterface(kind, vocab, hidden, classes)
        args = (torch.randint(0, vocab, (time, batch)),)
        label = f"TimeFirstInterface {kind} input (time={time}, batch={batch})"
    elif family == "one-sequence":
        model = OneSequence(kind, vocab, hidden, batch_first)
        args = (torch.randint(0, vocab, (time,)),)
        label = f"OneSequence {kind} batch_first={batch_first} input (time={time},)"
    elif family == "packed-time-first":
        lengths = draw(st.lists(st.integers(1, time), min_size=batch, max_size=batch))
        model = PackedTimeFirst(vocab, hidden, classes)
        args = (torch.randint(0, vocab, (batch, max(lengths))), torch.tensor(lengths))
        label = f"PackedTimeFirst padded (batch={batch}, time={max(lengths)}) lengths={lengths}"
    elif family == "hello":
        layers = draw(st.integers(1, 3))
        model = HelloRNN(n_in, hidden, layers)
        args = (torch.zeros(layers, batch, hidden), torch.randn(batch, time, n_in))
        label = f"HelloRNN(layers={layers}) hidden first, x (batch={batch}, time={time})"
    elif family == "enc-dec":
        model = EncoderDecoder(n_in, hidden, batch_first)
        args = (torch.randn((batch, time, n_in) if batch_first else (time, batch, n_in)),)
        label = f"EncoderDecoder(enc_batch_first={batch_first}) batch={batch} time={time}"
    elif family == "words-as-batch":
        words = draw(st.integers(1, 4))
        model = WordsAsBatch(vocab, n_in, hidden)
        args = (torch.randint(0, vocab, (batch, words, time)),)
        label = f"WordsAsBatch (batch={batch}, words={words}, chars={time})"
    elif family == "packed-gru":
        lengths = draw(st.lists(st.integers(1, time), min_size=batch, max_size=batch))
        gru = PackedGRU(n_in, hidden, batch_first=batch_first)
        model = gru if draw(st.booleans()) else Wrap(gru)
        padded = torch.randn((batch, max(lengths), n_in) if batch_first else (max(lengths), batch, n_in))
        args = (padded, torch.tensor(lengths))
        label = f"PackedGRU(batch_first={batch_first}) {type(model).__name__} lengths={lengths}"
    else:
        model = MixedPrecision(kind, n_in, hidden, classes, batch_first)
        args = (torch.randn((batch, time, n_in) if batch_first else (time, batch, n_in)),)
        context = _autocast
        label = f"MixedPrecision {kind} batch_first={batch_first} under autocast(cpu, bfloat16)"
    return Case(label, model.eval(), args, context=context)


# ---------------------------------------------------------------------------------------------------------
# 1. No false alarm
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", SINGLE)
def test_single_layers_accept_every_call_torch_runs_and_change_nothing(family: str) -> None:
    strategy, examples, _ = SINGLE[family]

    @_settings(examples)
    @given(strategy)
    def check(case: Case) -> None:
        _check_no_false_alarm(case)

    check()


@pytest.mark.parametrize("family", CONTAINERS)
def test_containers_accept_every_call_torch_runs_and_change_nothing(family: str) -> None:
    @_settings(6)
    @given(container_cases(family))
    def check(case: Case) -> None:
        _check_no_false_alarm(case)

    check()


@st.composite
def vmap_cases(draw: st.DrawFn, family: str) -> tuple[str, nn.Module, tuple[Tensor, ...]]:
    """A guarded module under torch.func.vmap: each sample is one call of the module."""
    n, n_in, hidden = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    per_sample = (
        _shape(draw, 2) if family != "cell" else draw(st.sampled_from([(), (draw(st.integers(1, 3)),)]))
    )
    torch.manual_seed(0)
    if family == "embedding":
        return family, nn.Embedding(6, hidden), (torch.randint(0, 6, (n, *per_sample)),)
    if family == "linear":
        return family, nn.Linear(n_in, hidden), (torch.randn(n, *per_sample, n_in),)
    kind = draw(st.sampled_from(["RNNCell", "GRUCell"]))  # torch has no vmap rule for lstm_cell
    cell = getattr(nn, kind)(n_in, hidden)
    args: tuple[Tensor, ...] = (torch.randn(n, *per_sample, n_in),)
    if draw(st.booleans()):
        args += (torch.randn(n, *per_sample, hidden),)
    return f"{kind} per-sample {per_sample or 'unbatched'}", cell, args


@pytest.mark.parametrize("family", ["embedding", "cell", "linear"])
def test_vmap_over_a_guarded_module(family: str) -> None:
    @_settings(6)
    @given(vmap_cases(family))
    def check(case: tuple[str, nn.Module, tuple[Tensor, ...]]) -> None:
        _check_vmap(*case)

    check()


def _check_vmap(label: str, module: nn.Module, args: tuple[Tensor, ...]) -> None:
    note(f"vmap over {label}: {[tuple(a.shape) for a in args]}")
    try:
        want = torch.func.vmap(copy.deepcopy(module))(*args)
    except Exception:
        assume(False)  # torch itself cannot vmap it: nothing to compare
    with guard(module):
        got = torch.func.vmap(module)(*args)
    _assert_same(got, want)


# ---------------------------------------------------------------------------------------------------------
# 2. No miss: one axis, dtype or index of one argument changed
# ---------------------------------------------------------------------------------------------------------

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.complex64,
          torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool]  # fmt: skip


def _resized(t: Tensor, axis: int, size: int, vocab: int) -> Tensor:
    shape = list(t.shape)
    shape[axis] = size
    if t.is_floating_point() or t.is_complex():
        return torch.randn(shape, dtype=t.dtype)
    return torch.randint(0, max(vocab, 1), shape, dtype=t.dtype)


@st.composite
def perturbed(draw: st.DrawFn, cases: st.SearchStrategy[Case]) -> tuple[Case, str, dict[str, Tensor], str]:
    case = draw(cases)
    slot = draw(st.sampled_from(sorted(case.tensors)))
    t = case.tensors[slot]
    # shapecheck checks shapes only (a forward may cast or move what it gets); guard also dtypes and devices
    kinds = (
        (["rank"] if case.mode == "shapecheck" else ["dtype", "rank", "device"])
        + (["axis"] if t.dim() else [])
        + (["index"] if case.vocab else [])
    )
    kind = draw(st.sampled_from(kinds))
    if kind == "axis":
        axis = draw(st.integers(0, t.dim() - 1))
        size = draw(
            st.sampled_from(sorted({0, max(t.shape[axis] - 1, 0), t.shape[axis] + 1} - {t.shape[axis]}))
        )
        new = _resized(t, axis, size, case.vocab)
        what = f"{slot} axis {axis}: {t.shape[axis]} -> {size}"
    elif kind == "rank":  # one axis more (of size 1) or one fewer (its first entry)
        axis = draw(st.integers(0, t.dim()))
        drop = t.dim() > 0 and axis < t.dim() and t.shape[axis] > 0 and draw(st.booleans())
        new = t.select(axis, 0).clone() if drop else t.unsqueeze(axis).clone()
        what = f"{slot} {'without' if drop else 'with a new'} axis {axis}: {tuple(t.shape)} -> {tuple(new.shape)}"
    elif kind == "device":  # the meta device stands in for another device on a machine without one
        new = t.to("meta")
        what = f"{slot} on the meta device"
    elif kind == "dtype":
        dtype = draw(st.sampled_from([d for d in DTYPES if d != t.dtype]))
        new = t.to(dtype)
        what = f"{slot} dtype: {t.dtype} -> {dtype}"
    else:
        assume(t.numel() > 0)
        bad = draw(st.sampled_from([case.vocab, case.vocab + 2, -1]))
        new = t.clone()
        new.view(-1)[draw(st.integers(0, t.numel() - 1))] = bad
        what = f"{slot} holds index {bad} (vocab={case.vocab})"
    return case, slot, {**case.tensors, slot: new}, what


def _layer(case: Case) -> nn.Module:
    return next(m for m in case.model.modules() if not isinstance(m, (Wrap, CheckedRNN)))


def _names_argument(message: str, name: str) -> bool:
    """The ShapeError names ``name`` as the wrong argument, or as where the size it disagrees with came from."""
    n = re.escape(name)
    if re.search(rf"argument '{n}(\[\d+\]|\.\w+)*'", message):
        return True
    bound = next((line for line in message.splitlines() if line.lstrip().startswith("bound:")), "")
    if re.search(rf"from {n}(\[\d+\]|\.\w+)*[ .]", bound):
        return True
    return name == "input" and "from the model's input" in bound


@pytest.mark.parametrize("family", SINGLE)
def test_every_perturbation_torch_refuses_is_a_shape_error_naming_the_argument(family: str) -> None:
    strategy, _, examples = SINGLE[family]

    @_settings(examples)
    @given(perturbed(strategy))
    def check(drawn: tuple[Case, str, dict[str, Tensor], str]) -> None:
        _check_perturbation(*drawn)

    check()


def _check_perturbation(case: Case, slot: str, tensors: dict[str, Tensor], what: str) -> None:
    note(f"{case!r}\nperturbed: {what}")
    assert case.build is not None
    try:
        want = _run_torch(case, case.args, case.kwargs)  # the unperturbed call is valid
    except Exception as e:  # pragma: no cover - a strategy bug
        raise AssertionError(f"strategy bug: torch refuses the unperturbed call: {e}") from e
    # torch 2.13 runs no check of an LSTM's (h, c) when the input is packed (LSTM.forward calls
    # check_forward_args only for a tensor input): a wrong state there is read out of bounds, and a
    # zero-sized one crashes the process (SIGSEGV). Such calls prove a mistake but cannot be run here.
    packed = isinstance(case.args[0] if case.args else case.kwargs["input"], PackedSequence)
    assume(not (packed and slot in ("h", "c") and isinstance(_layer(case), nn.LSTM)))
    try:
        args, kwargs = case.build(tensors)
    except Exception:
        assume(False)  # the perturbation broke the packing before the layer is called
    try:
        _run_torch(case, args, kwargs)
    except Exception as e:
        torch_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    else:
        return  # torch runs it: the guard may accept it
    note(f"torch: {torch_error}")
    model = copy.deepcopy(case.model)
    handle = guard(model, **case.guard_kw) if case.mode == "guard" else contextlib.nullcontext()
    with handle, case.context():
        with pytest.raises(ShapeError) as info:
            model(*args, **kwargs)
        name = case.arg_of[slot]
        assert _names_argument(str(info.value), name), f"the ShapeError does not name '{name}':\n{info.value}"
        # a refused call leaves nothing behind: the valid call still passes, with torch's results
        _assert_same(model(*case.args, **case.kwargs), want)
