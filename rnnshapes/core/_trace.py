"""``trace(model, *inputs)``: run a model once and record every recurrent, embedding, attention and linear call
with named axes (a torchinfo for recurrent networks).

Forward hooks record each call of every ``nn.RNN/GRU/LSTM``, cell, ``nn.Embedding``, ``nn.Linear`` and
``nn.MultiheadAttention`` inside the model, naming each axis from the layer's configuration (``_trace_layers``).
Names then travel along the tensors themselves: a tensor that one layer returned and another received, a
``.t()`` or ``[-1]`` view of it, and the leading axes of an embedding or linear layer carry the same names, so
the model's own arguments and return value are named too (or from its jaxtyping annotations, where it has
them). Calls with the same path and the same shapes fold into one row with a count.
"""

import contextlib
import inspect
import typing
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from . import _trace_layers as layers
from ._bind import module_context
from ._checks import check_value
from ._errors import ShapeError
from ._specs import EXPR, NAMED, PackedSpec, TensorSpec, TupleSpec, UnionSpec, parse_annotation
from ._switch import checks
from ._trace_format import Trace, TracedCall, TracedTensor

__all__ = ["Trace", "TracedCall", "TracedTensor", "trace"]

Node = tuple[int, int]  # (tensor key, axis)


@dataclass
class _Slot:
    """A recorded value: its description, the key of its tensor (of ``data`` when packed) and own axis names."""

    name: str
    kind: str  # "tensor" | "packed" | "none" | "value"
    shape: tuple[int, ...] = ()
    dtype: str = ""
    device: str = ""
    axes: tuple[str, ...] = ()
    batch_sizes: tuple[int, ...] = ()
    value: str = ""
    key: int = -1


@dataclass
class _Call:
    path: str
    module: nn.Module
    inputs: list[_Slot]
    notes: list[str]
    info: layers.CallInfo
    outputs: list[_Slot] | None = None
    raised: str = ""


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[_Call] = []
        self.open: list[_Call] = []
        self.keys: dict[int, tuple[weakref.ref[Tensor], int]] = {}
        self.count = 0  # keys handed out
        self.parent: dict[Node, Node] = {}
        self.batch: tuple[int, str] | None = None  # (size, where it came from): declared by the caller
        self.names: dict[Node, str] = {}  # the one name every slot gives an axis class (after settle)

    # --- tensors and the links between their axes ---

    def key(self, t: Tensor) -> int:
        entry = self.keys.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        self.count += 1  # a fresh key: id(t) may be a dead tensor's, whose key still names its axes
        k = self.count
        self.keys[id(t)] = (weakref.ref(t), k)
        base = t._base if t._is_view() else None
        if base is not None:  # a view (.t(), [-1], transpose): its axes are some of the base's axes
            bk = self.key(base)
            for i, (size, stride) in enumerate(zip(t.shape, t.stride(), strict=True)):
                same = [j for j in range(base.dim()) if (base.shape[j], base.stride(j)) == (size, stride)]
                if size > 1 and stride != 0 and len(same) == 1:
                    self.link((k, i), (bk, same[0]))
        return k

    def find(self, n: Node) -> Node:
        root = n
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        self.parent[n] = root
        return root

    def link(self, a: Node, b: Node) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb

    def slots(self, leaf: layers.Leaf) -> list[_Slot]:
        v = leaf.value
        if isinstance(v, PackedSequence):
            data = v.data
            return [
                _Slot(
                    leaf.name, "packed", tuple(data.shape), _dtype(data), str(data.device),
                    _fit(leaf.axes, data.dim()), tuple(v.batch_sizes.tolist()), key=self.key(data),
                )
            ]  # fmt: skip
        if isinstance(v, Tensor):
            axes = _fit(leaf.axes, v.dim())
            return [
                _Slot(leaf.name, "tensor", tuple(v.shape), _dtype(v), str(v.device), axes, key=self.key(v))
            ]
        if v is None:
            return [_Slot(leaf.name, "none")]
        if isinstance(v, (tuple, list)) and any(isinstance(i, (Tensor, PackedSequence)) for i in v):
            items = [layers.Leaf(f"{leaf.name}[{i}]", item) for i, item in enumerate(v)]
            return [s for item in items for s in self.slots(item)]
        if isinstance(v, dict) and any(isinstance(i, (Tensor, PackedSequence)) for i in v.values()):
            return [s for k, item in v.items() for s in self.slots(layers.Leaf(f"{leaf.name}[{k!r}]", item))]
        if _plain(v):
            text = repr(v)
        else:  # an object (a batch namespace, a config): its type, not a repr of the tensors it holds
            text = f"{type(v).__name__} object"
        return [_Slot(leaf.name, "value", value=text if len(text) <= 60 else text[:57] + "...")]

    # --- hooks ---

    def before(self, path: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        info = layers.inputs(module, args, kwargs)
        notes = list(info.notes)
        if self.batch is not None and info.batch is not None and info.batch != self.batch[0]:
            notes.append(
                f"batch={info.batch} here, but the model was called with batch={self.batch[0]} ({self.batch[1]})"
            )
        call = _Call(path, module, [s for leaf in info.inputs for s in self.slots(leaf)], notes, info)
        self.calls.append(call)
        self.open.append(call)

    def after(self, module: nn.Module, output: Any) -> None:
        while self.open:
            call = self.open.pop()
            if call.module is module:
                break
            call.raised = "raised; the model caught it"  # an exception the model handled itself
        else:
            return
        leaves = layers.outputs(module, call.info, output)
        call.outputs = [s for leaf in leaves for s in self.slots(leaf)]
        for i, o in call.info.links:  # leading axes of an embedding or a linear layer
            a, b = call.inputs[i], call.outputs[o]
            if a.key > 0 and b.key > 0:
                for axis in range(min(len(a.shape), len(b.shape) - 1)):
                    self.link((a.key, axis), (b.key, axis))

    # --- names ---

    def named(self, slots: list[_Slot]) -> list[_Slot]:
        """``slots`` with unnamed axes named where every name reaching that axis's class agrees."""
        return [_Slot(**{**s.__dict__, "axes": self._axes(s)}) for s in slots]

    def _axes(self, s: _Slot) -> tuple[str, ...]:
        if s.key < 0:
            return s.axes
        axes = list(s.axes)
        for i, a in enumerate(s.axes):
            name = "" if a else self.names.get(self.find((s.key, i)), "")
            if name and name not in axes:  # two axes of one tensor never share a name
                axes[i] = name
        return tuple(axes)

    def settle(self, extra: list[_Slot]) -> None:
        found: dict[Node, set[str]] = {}
        every = [s for c in self.calls for s in (*c.inputs, *(c.outputs or []))] + extra
        for s in every:
            for i, a in enumerate(s.axes):
                if a and s.key > 0:
                    found.setdefault(self.find((s.key, i)), set()).add(a)
        self.names = {root: next(iter(n)) for root, n in found.items() if len(n) == 1}


def _fit(axes: layers.Axes, ndim: int) -> tuple[str, ...]:
    return axes if axes is not None and len(axes) == ndim else ("",) * ndim


def _dtype(t: Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _signature(slots: list[_Slot]) -> tuple[Any, ...]:
    return tuple((s.name, s.kind, s.shape, s.dtype, s.device, s.batch_sizes, s.value) for s in slots)


# --- the model's own arguments: names from its annotations -------------------------------------------------


def _annotated_axes(spec: Any, value: Any, batch_first: bool) -> Any:
    """Axis names for ``value`` from its parsed annotation: a tuple for a tensor, a list for a tuple."""
    if isinstance(spec, UnionSpec):
        for option in spec.options:
            names = _annotated_axes(option, value, batch_first)
            if names is not None:
                return names
        return None
    if isinstance(spec, PackedSpec) and isinstance(value, PackedSequence) and spec.features is not None:
        return _annotated_axes(spec.features, value.data, batch_first)
    if isinstance(spec, TupleSpec) and isinstance(value, tuple) and not isinstance(value, PackedSequence):
        if len(spec.items) == len(value):
            return [_annotated_axes(s, v, batch_first) for s, v in zip(spec.items, value, strict=True)]
        return None
    if isinstance(spec, TensorSpec) and isinstance(value, Tensor):
        dims = spec.dims_bf if batch_first else spec.dims_tf
        words = [d.name if d.kind in (NAMED, EXPR) else "" for d in dims]
        if spec.variadic_at < 0:
            return tuple(words) if len(words) == value.dim() else None
        head, tail = words[: spec.variadic_at], words[spec.variadic_at + 1 :]
        rest = value.dim() - len(head) - len(tail)
        return tuple(head + [""] * rest + tail) if rest >= 0 else None
    return None


def _leaves(name: str, value: Any, axes: Any) -> list[layers.Leaf]:
    if isinstance(axes, list) and isinstance(value, tuple):
        return [
            leaf
            for i, (v, a) in enumerate(zip(value, axes, strict=True))
            for leaf in _leaves(f"{name}[{i}]", v, a)
        ]
    return [layers.Leaf(name, value, axes if isinstance(axes, tuple) else None)]


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(getattr(fn, "__func__", fn), include_extras=True)
    except Exception:  # an annotation that does not resolve here: no names from annotations
        return {}


def _batch_first(module: nn.Module) -> bool:
    bf = getattr(module, "batch_first", None)
    if isinstance(bf, bool):
        return bf
    rnn = next((m for m in module.modules() if isinstance(m, nn.RNNBase)), None)
    return rnn.batch_first if rnn is not None else True


def _short(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class _Checker:
    """Checks the model's own arguments and return value against its annotations; mismatches become notes."""

    def __init__(self, module: nn.Module, fn: Callable[..., Any], hints: dict[str, Any]) -> None:
        self.specs = {n: parse_annotation(h) for n, h in hints.items()}
        self.ctx = module_context(getattr(fn, "__name__", "forward"), module) if self.specs else None
        self.notes: list[str] = []

    def check(self, name: str, value: Any, label: str) -> None:
        spec = self.specs.get(name)
        if spec is None or self.ctx is None:
            return
        try:
            check_value(spec, value, label, self.ctx)
        except ShapeError as e:
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            self.notes.append(" ".join(lines[:3]))

    def batch(self) -> int | None:
        size = self.ctx.memo.get("batch") if self.ctx is not None else None
        return size if isinstance(size, int) else None


# --- the public function ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _modes(module: nn.Module, train: bool | None, grad: bool) -> Iterator[None]:
    flags = [(m, m.training) for m in module.modules()]
    if train is not None:
        module.train(train)
    try:
        with torch.set_grad_enabled(True) if grad else torch.no_grad():
            yield
    finally:
        for m, flag in flags:
            m.training = flag


def trace(
    model: nn.Module | Callable[..., Any],
    *args: Any,
    train: bool | None = False,
    grad: bool = False,
    batch_axis: int | None = None,
    forward_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Trace:
    """Run ``model(*args, **kwargs)`` once and return every layer call inside it, with named axes.

    One row per call of every ``nn.RNN/GRU/LSTM``, ``nn.RNNCell/GRUCell/LSTMCell``, ``nn.Embedding``,
    ``nn.Linear`` and ``nn.MultiheadAttention`` in the model, in call order: its path, its configuration
    (``GRU(input=100, hidden=256, layers=1, dirs=2, batch_first)``), and each tensor it received and returned
    with its shape, dtype and axis names from the vocabulary (packed: ``total`` and ``batch_sizes``; states:
    ``layers*dirs batch hidden``; attention: ``batch target source``). Calls of one layer with the same
    shapes fold into one row with a count. Sizes that disagree within a call are a note on its row, never an
    error; rnnshapes' own checks are off during the call, so the trace raises only what torch raises, and
    then the exception carries the trace up to the failing call (``error.rnnshapes_trace``, and a note).

    Args:
        model: an ``nn.Module``, or a bound method of one (``model.step``, ``model.generate``).
        *args: the model's arguments, exactly as it is called.
        train: ``False`` (default) traces in eval mode, ``True`` in training mode, ``None`` as the model is;
            the training flag of every submodule is restored afterwards.
        grad: ``False`` (default) traces under ``torch.no_grad()``; ``True`` with gradients enabled.
        batch_axis: the axis of the model's first tensor argument that holds the batch: every recurrent,
            cell and attention call with another batch size gets a note. Without it, the batch is bound only
            from evidence: a ``PackedSequence`` argument, or the model's own ``batch`` annotation.
        forward_kwargs: keyword arguments of the model whose names are taken here (``train``, ``grad``,
            ``batch_axis``, ``forward_kwargs``).
        **kwargs: the model's keyword arguments.

    Returns:
        A ``Trace``: ``str()`` is a plain-text table, ``.markdown()`` a Markdown table, ``.to_dict()`` and
        ``.to_json()`` the same content for tools. Hooks are removed before it returns, also on error.
    """
    kwargs = {**kwargs, **(forward_kwargs or {})}
    module = model if isinstance(model, nn.Module) else getattr(model, "__self__", None)
    if not isinstance(module, nn.Module):
        raise TypeError(f"trace() takes an nn.Module or a bound method of one, got {type(model).__name__}")
    fn = type(module).forward if model is module else model
    title = type(module).__name__ + ("" if model is module else f".{getattr(model, '__name__', 'call')}")
    call_fn = typing.cast(Callable[..., Any], model)

    rec = _Recorder()
    try:
        bound = (
            inspect.signature(module.forward if model is module else call_fn).bind(*args, **kwargs).arguments
        )
    except (TypeError, ValueError):
        bound = {**{f"args[{i}]": a for i, a in enumerate(args)}, **kwargs}
    hints = _hints(fn)
    checker = _Checker(module, fn, {n: h for n, h in hints.items() if n in bound or n == "return"})
    bf = _batch_first(module)
    arg_leaves = []
    for name, value in bound.items():
        spec = checker.specs.get(name)
        axes = _annotated_axes(spec, value, bf) if spec is not None else None
        arg_leaves += _leaves(name, value, axes)
        checker.check(name, value, name)
    first = next((leaf for leaf in arg_leaves if isinstance(leaf.value, (Tensor, PackedSequence))), None)
    if batch_axis is not None and first is not None and isinstance(first.value, Tensor):
        if first.value.dim() > batch_axis:
            rec.batch = (int(first.value.shape[batch_axis]), f"axis {batch_axis} of {first.name}")
            names = list(first.axes or ("",) * first.value.dim())
            names[batch_axis] = names[batch_axis] or "batch"
            first.axes = tuple(names)
    elif first is not None and isinstance(first.value, PackedSequence):
        rec.batch = (int(first.value.batch_sizes[0]), f"{first.name}.batch_sizes[0]")
    elif checker.batch() is not None:
        rec.batch = (typing.cast(int, checker.batch()), "its annotations")
    arg_slots = [s for leaf in arg_leaves for s in rec.slots(leaf)]

    handles = []
    for path, m in module.named_modules():
        if isinstance(m, layers.TRACED):
            handles.append(
                m.register_forward_pre_hook(
                    lambda mod, a, kw, _p=path or "(model)": rec.before(_p, mod, a, kw), with_kwargs=True
                )
            )
            handles.append(m.register_forward_hook(lambda mod, a, out: rec.after(mod, out)))
    mode = ("train" if train else "eval" if train is False else "as is") + (", grad" if grad else ", no_grad")
    result: Any = None
    try:
        with _modes(module, train, grad), checks(False):
            result = call_fn(*args, **kwargs)
    except Exception as error:
        if rec.open:
            rec.open[-1].raised = _short(error)
        where = "" if rec.open else " (in the model's own code, after the last call above)"
        done = _finish(rec, title, mode, arg_slots, [], checker.notes, _short(error) + where)
        with contextlib.suppress(AttributeError, TypeError):
            error.rnnshapes_trace = done  # type: ignore[attr-defined]
        error.add_note(f"rnnshapes.trace up to the failing call:\n{done}")
        raise
    finally:
        for h in handles:
            h.remove()
    checker.check("return", result, "return value")
    ret_spec = checker.specs.get("return")
    ret_axes = _annotated_axes(ret_spec, result, bf) if ret_spec is not None else None
    returned = [s for leaf in _leaves("returned", result, ret_axes) for s in rec.slots(leaf)]
    return _finish(rec, title, mode, arg_slots, returned, checker.notes, "")


def _finish(
    rec: _Recorder,
    title: str,
    mode: str,
    args: list[_Slot],
    returned: list[_Slot],
    notes: list[str],
    error: str,
) -> Trace:
    rec.settle(args + returned)
    rows: list[TracedCall] = []
    index: dict[tuple[Any, ...], int] = {}
    for call in rec.calls:
        outputs = call.outputs or []
        key = (call.path, _signature(call.inputs), _signature(outputs), tuple(call.notes), call.raised)
        if key in index:
            row = rows[index[key]]
            rows[index[key]] = TracedCall(**{**row.__dict__, "calls": row.calls + 1})
            continue
        index[key] = len(rows)
        rows.append(
            TracedCall(
                call.path,
                layers.config(call.module),
                tuple(_public(s) for s in rec.named(call.inputs)),
                tuple(_public(s) for s in rec.named(outputs)),
                1,
                tuple(call.notes),
                call.raised or ("" if call.outputs is not None else "did not return"),
            )
        )
    devices = sorted(
        {s.device for c in rec.calls for s in c.inputs if s.device} | {s.device for s in args if s.device}
    )
    return Trace(
        title,
        mode + (f", {'/'.join(devices)}" if devices else ""),
        tuple(_public(s) for s in rec.named(args)),
        tuple(rows),
        tuple(_public(s) for s in rec.named(returned)),
        tuple(notes),
        error,
    )


def _public(s: _Slot) -> TracedTensor:
    return TracedTensor(s.name, s.kind, s.shape, s.dtype, s.device, s.axes, s.batch_sizes, s.value)


_PLAIN = (
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    slice,
    range,
    torch.dtype,
    torch.device,
    torch.Size,
    type(...),
)


def _plain(v: Any) -> bool:
    """A value whose repr is short and says what it is: numbers, strings, dtypes, and containers of them."""
    if isinstance(v, _PLAIN):
        return True
    if isinstance(v, (tuple, list)):
        return all(_plain(i) for i in v)
    if isinstance(v, dict):
        return all(_plain(k) and _plain(i) for k, i in v.items())
    return False
