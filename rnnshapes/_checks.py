"""`shapecheck`: jaxtyping annotations checked at the call, with sizes bound from the module.

How a call is checked (all of it here, read top to bottom):

1. At decoration time every annotation is parsed once into a small *spec* (tensor dims, unions, tuples,
   PackedSequence, or "anything else", which beartype checks).
2. At call time the sizes the module already knows are bound first: ``layers``, ``dirs``, ``hidden``,
   ``cell``, ``input`` from its first ``nn.RNN/GRU/LSTM`` (``from self.rnn``), plus whatever its
   ``shape_dims()`` returns. ``*seq`` is expanded with the module's ``batch_first``.
3. Arguments are walked in order; each named axis either binds a size or is compared with the bound one.
   This is plain integer work (the fast path). Only when something differs is a message composed: the
   expected shape with every bound value, the actual shape, the first mismatched axis, where each binding
   came from, and a hint for the usual mistake (see ``_hints``).
4. Devices and dtypes of the tensors are compared with each other and with the module's weights.
5. The return value is checked with the same bindings.
6. A call whose signature passed before is not checked again: the shapes, dtypes and devices of its tensor
   arguments, with the module's layout and weights (and the function), key a set of passed signatures kept
   per module (dropped when its recurrent layer is replaced). A training loop pays the full check once per
   batch shape. Any argument that is not a tensor, None or a tuple of them is always checked in full.

The semantics of the dimension strings are jaxtyping's (a property test checks that this fast path accepts
and rejects exactly what ``jaxtyped(typechecker=beartype)`` does on plain annotations); ``*seq``, module
binding, the LSTM pair, PackedSequence and device checks are what rnnshapes adds.
"""

import ast
import functools
import inspect
import os
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import jaxtyping
import torch
from beartype.door import is_bearable
from jaxtyping import Float
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ._errors import ShapeError
from ._vocab import seq_axes

F = TypeVar("F", bound=Callable[..., Any])

Hidden = Float[Tensor, "layers*dirs batch hidden"]
"""A recurrent layer's hidden state: always ``(layers*dirs, batch, hidden)``, whatever ``batch_first`` is."""

LSTMState = tuple[Float[Tensor, "layers*dirs batch hidden"], Float[Tensor, "layers*dirs batch cell"]]
"""An LSTM's state ``(h, c)``: ``h`` is ``(layers*dirs, batch, hidden)``, ``c`` is ``(layers*dirs, batch, cell)``."""

if typing.TYPE_CHECKING:
    from typing import Annotated as Packed
else:

    class Packed:
        """A checked ``PackedSequence``: ``Packed[PackedSequence, "input"]`` names the per-step feature axes.

        The batch size is bound from the packed batch (``batch_sizes[0]``), and the data must be
        ``(total, *features)``. For type checkers it is ``Annotated[PackedSequence, ...]``.
        """

        def __class_getitem__(cls, params: tuple[Any, str]) -> Any:
            base, dims = params
            if base is not PackedSequence:
                raise TypeError(
                    f"Packed[...] takes PackedSequence first, e.g. Packed[PackedSequence, 'input'], got {base!r}"
                )
            return Annotated[PackedSequence, _PackedMarker(dims)]


@dataclass(frozen=True)
class _PackedMarker:
    dims: str


# ---------------------------------------------------------------------------------------------------------
# On / off
# ---------------------------------------------------------------------------------------------------------


def _env_enabled() -> bool:
    return os.environ.get("RNNSHAPES_CHECKS", "1").strip().lower() not in {"0", "false", "no", "off"}


class _State:
    enabled: bool = _env_enabled()
    # remember the call signatures that passed (shapes, dtypes, devices, the module's layout and weights), so
    # that a training loop pays the full check once per signature; off only to measure the full check
    memo: bool = True


def checks_enabled() -> bool:
    """Whether checks run now (``RNNSHAPES_CHECKS=0`` at import, or ``checks(False)``, turn them off)."""
    return _State.enabled


@contextmanager
def checks(enabled: bool) -> Iterator[None]:
    """Turn shape checks on or off inside a ``with`` block (restored afterwards, also on error).

    ``RNNSHAPES_CHECKS=0`` in the environment at import time goes further: ``shapecheck`` then returns the
    undecorated function, so disabled checks cost nothing at all.
    """
    before = _State.enabled
    _State.enabled = bool(enabled)
    try:
        yield
    finally:
        _State.enabled = before


# ---------------------------------------------------------------------------------------------------------
# Specs: annotations parsed once
# ---------------------------------------------------------------------------------------------------------

NAMED, FIXED, EXPR, ANON, VARIADIC = "named", "fixed", "expr", "anon", "variadic"


@dataclass(frozen=True)
class DimSpec:
    kind: str
    name: str = ""  # NAMED / VARIADIC name, EXPR text
    size: int = 0  # FIXED
    fn: Callable[..., int] | None = None  # EXPR: compiled
    args: tuple[str, ...] = ()  # EXPR: the names it reads
    via_seq: bool = False  # came from *seq


class _Spec:
    """Base of parsed annotations."""

    label: str


@dataclass(eq=False)
class TensorSpec(_Spec):
    label: str
    dtypes: frozenset[str] | None  # None: any dtype
    dtype_label: str
    dims_bf: tuple[DimSpec, ...]  # *seq expanded for batch_first=True
    dims_tf: tuple[DimSpec, ...]  # ... and for batch_first=False (same as dims_bf without *seq)
    has_seq: bool
    variadic_at: int  # index of the one variadic dim, or -1
    integer: bool  # an index / lengths tensor (dtype Int)
    plan_bf: tuple[
        tuple[int, str, str, int, bool, DimSpec], ...
    ] = ()  # (axis, kind, name, size, via_seq, dim)
    plan_tf: tuple[tuple[int, str, str, int, bool, DimSpec], ...] = ()
    ndim: int = 0

    def __post_init__(self) -> None:
        self.ndim = len(self.dims_bf)
        if self.variadic_at < 0:
            self.plan_bf = tuple(
                (i, d.kind, d.name, d.size, d.via_seq, d) for i, d in enumerate(self.dims_bf)
            )
            self.plan_tf = tuple(
                (i, d.kind, d.name, d.size, d.via_seq, d) for i, d in enumerate(self.dims_tf)
            )


@dataclass(eq=False)
class UnionSpec(_Spec):
    label: str
    options: tuple[_Spec, ...]
    allows_none: bool


@dataclass(eq=False)
class TupleSpec(_Spec):
    label: str
    items: tuple[_Spec, ...]


@dataclass(eq=False)
class PackedSpec(_Spec):
    label: str
    features: TensorSpec | None


@dataclass(eq=False)
class OtherSpec(_Spec):
    label: str
    hint: Any


def _compile_expr(text: str) -> tuple[Callable[..., int], tuple[str, ...]]:
    tree = ast.parse(text, mode="eval")
    names = tuple(dict.fromkeys(n.id for n in ast.walk(tree) if isinstance(n, ast.Name)))
    fn = eval(f"lambda {', '.join(names)}: {text}", {"__builtins__": {}})  # noqa: S307 - our own annotation
    return fn, names


def parse_dims(dim_str: str) -> tuple[tuple[DimSpec, ...], tuple[DimSpec, ...], bool]:
    """Parse a jaxtyping dimension string into specs for batch_first True and False."""
    bf: list[DimSpec] = []
    tf: list[DimSpec] = []
    has_seq = False
    for tok in dim_str.split():
        if tok == "*seq":
            has_seq = True
            for out, axes in ((bf, seq_axes(True)), (tf, seq_axes(False))):
                out.extend(DimSpec(NAMED, name=n, via_seq=True) for n in axes)
            continue
        if tok == "...":
            d = DimSpec(VARIADIC, name="")
        elif tok.startswith("*"):
            name = tok[1:]
            d = DimSpec(VARIADIC, name="" if name.startswith("_") else name)
        elif tok[0] in "#?" or "=" in tok:
            raise TypeError(
                f"rnnshapes.shapecheck does not support the dimension {tok!r} in {dim_str!r}; "
                "use jaxtyping.jaxtyped directly for broadcast or tree-path dimensions"
            )
        elif tok.isdigit():
            d = DimSpec(FIXED, size=int(tok))
        elif tok.isidentifier():
            d = DimSpec(ANON) if tok.startswith("_") else DimSpec(NAMED, name=tok)
        else:
            fn, names = _compile_expr(tok)
            d = DimSpec(EXPR, name=tok, fn=fn, args=names)
        bf.append(d)
        tf.append(d)
    if sum(d.kind == VARIADIC for d in bf) > 1:
        raise TypeError(f"at most one variadic dimension (*name or ...) is allowed, got {dim_str!r}")
    return tuple(bf), tuple(tf), has_seq


def _is_jaxtyping(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, jaxtyping.AbstractArray)


def _label(ann: Any) -> str:
    if _is_jaxtyping(ann):
        return f'{ann.dtype.__name__}[{ann.array_type.__name__}, "{ann.dim_str}"]'
    return getattr(ann, "__name__", None) or repr(ann).replace("typing.", "")


@functools.cache
def parse_annotation(ann: Any) -> _Spec | None:
    """Parse one annotation into a spec (``None``: nothing to check)."""
    if ann is inspect.Parameter.empty or ann is Any:
        return None
    if _is_jaxtyping(ann):
        dtypes = ann.dtypes
        allowed = frozenset(dtypes) if isinstance(dtypes, (list, tuple)) else None
        bf, tf, has_seq = parse_dims(ann.dim_str)
        variadic_at = next((i for i, d in enumerate(bf) if d.kind == VARIADIC), -1)
        integer = allowed is not None and all(d.startswith(("int", "uint")) for d in allowed)
        return TensorSpec(_label(ann), allowed, ann.dtype.__name__, bf, tf, has_seq, variadic_at, integer)
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is Annotated and args and args[0] is PackedSequence:
        marker = next((a for a in args[1:] if isinstance(a, _PackedMarker)), None)
        feats = None
        if marker is not None:
            spec = parse_annotation(Float[Tensor, f"total {marker.dims}"])
            assert isinstance(spec, TensorSpec)
            feats = spec
        return PackedSpec(f'Packed[PackedSequence, "{marker.dims if marker else ""}"]', feats)
    if ann is PackedSequence:
        return PackedSpec("PackedSequence", None)
    if origin in (typing.Union, types.UnionType):
        options = tuple(parse_annotation(a) for a in args if a is not type(None))
        if any(o is None for o in options):
            return None  # Any inside a union: nothing to check
        label = " | ".join(
            [o.label for o in options if o is not None] + (["None"] if type(None) in args else [])
        )
        return UnionSpec(label, typing.cast(tuple[_Spec, ...], options), type(None) in args)
    if origin is tuple and args and args[-1] is not Ellipsis and args != ((),):
        items = tuple(parse_annotation(a) for a in args)
        label = "tuple[" + ", ".join(i.label if i else "Any" for i in items) + "]"
        return TupleSpec(
            label, typing.cast(tuple[_Spec, ...], tuple(i or OtherSpec("Any", Any) for i in items))
        )
    return OtherSpec(_label(ann), ann)


# ---------------------------------------------------------------------------------------------------------
# Bindings and the call context
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """Where a bound size came from (built only for messages)."""

    value: Any  # int, or a tuple of ints for a variadic name
    origin: str  # "self.rnn", "x axis 0", ...
    arg: str = ""  # argument that bound it ("" for module-bound)
    axis: int = -1
    via_seq: bool = False
    shape: tuple[int, ...] = ()  # the binding tensor's shape (for layout hints)


class Context:
    """Everything one checked call knows: who is called, the bound sizes, the module and its weights.

    ``memo`` maps a dimension name to its size (plain ints: the fast path); ``org`` maps it to where the
    size came from, ``(origin or None, arg, axis, via_seq, shape)``, read only when a message is composed.
    """

    __slots__ = (
        "name",
        "module",
        "memo",
        "org",
        "module_org",
        "batch_first",
        "weight",
        "weight_origin",
        "ref_tensor",
        "label",
    )

    def __init__(
        self,
        name: str,
        module: nn.Module | None,
        memo: dict[str, Any],
        org: dict[str, tuple[Any, ...]],
        module_org: dict[str, tuple[Any, ...]] | None = None,
    ):
        self.name = name
        self.module = module
        self.memo = memo
        self.org = org
        self.module_org = module_org or {}
        self.batch_first = True
        self.weight: Tensor | None = None
        self.weight_origin = ""
        self.ref_tensor: tuple[str, Tensor] | None = None
        self.label: str | None = None  # set by guard: "model.rnn (GRU).forward()"

    @property
    def where(self) -> str:
        if self.label is not None:
            return self.label
        return f"{type(self.module).__name__}.{self.name}()" if self.module is not None else f"{self.name}()"

    def binding(self, name: str) -> Binding | None:
        if name not in self.memo:
            return None
        origin, arg, axis, via_seq, shape = self.org.get(name) or self.module_org[name]
        return Binding(self.memo[name], origin or f"{arg} axis {axis}", arg, axis, via_seq, tuple(shape))


@dataclass
class _ModuleInfo:
    memo: dict[str, Any]
    org: dict[str, tuple[Any, ...]]
    batch_first: bool
    weight_owner: nn.Module | None  # the module whose parameter sets the expected device and dtype
    weight_name: str
    weight_origin: str
    # (parent, attribute, child) from the checked module down to the recurrent layer the sizes came from:
    # if any link was replaced (``model.rnn = nn.GRU(...)``), the sizes are read again
    chain: tuple[tuple[nn.Module, str, nn.Module], ...] = ()
    # per checked function: the call signatures that passed its checks with this module as it is now
    seen: dict[Callable[..., Any], set[Any]] = field(default_factory=dict)

    def current(self) -> bool:
        for parent, attr, child in self.chain:
            if parent._modules.get(attr) is not child:
                return False
        return True

    def weight(self) -> Tensor | None:
        """The weight as it is now: ``load_state_dict(assign=True)`` or ``.double()`` may have replaced it."""
        owner = self.weight_owner
        if owner is None:
            return None
        w = owner._parameters.get(self.weight_name)
        if w is None:  # a parametrized weight (weight_norm, ...): its stored original, not a recomputation
            parametrizations = owner.__dict__.get("_modules", {}).get("parametrizations")
            entry = parametrizations._modules.get(self.weight_name) if parametrizations is not None else None
            if entry is not None:  # one original, or original0, original1, ... (weight_norm)
                w = entry._parameters.get("original")
                w = entry._parameters.get("original0") if w is None else w
        return w


_INFO_KEY = "_rnnshapes_info"  # kept in the module's __dict__: not a parameter, buffer or submodule


def _rnn_of(module: nn.Module) -> tuple[str, nn.RNNBase | None]:
    """The module's recurrent layer (itself, or its first ``nn.RNN/GRU/LSTM`` child) and its path."""
    if isinstance(module, nn.RNNBase):
        return "self", module
    path = next((name for name, m in module.named_modules() if isinstance(m, nn.RNNBase)), None)
    if path is None:
        return "", None
    return f"self.{path}", typing.cast(nn.RNNBase, module.get_submodule(path))


def _chain(module: nn.Module, path: str) -> tuple[tuple[nn.Module, str, nn.Module], ...]:
    links = []
    parent = module
    for attr in path.split(".")[1:]:  # path is "self.a.b"
        child = parent._modules[attr]
        assert child is not None
        links.append((parent, attr, child))
        parent = child
    return tuple(links)


def _module_info(module: nn.Module) -> _ModuleInfo:
    """The sizes a module knows, read at its first checked call and again if its recurrent layer is replaced."""
    memo: dict[str, Any] = {}
    org: dict[str, tuple[Any, ...]] = {}
    info = _ModuleInfo(memo, org, True, None, "", "")
    if isinstance(module, nn.RNNCellBase):
        for name, value in (("input", module.input_size), ("hidden", module.hidden_size)):
            memo[name] = value
            org[name] = ("self", "", -1, False, ())
        info.weight_owner, info.weight_name, info.weight_origin = module, "weight_ih", "self.weight_ih"
        return info
    if isinstance(module, (nn.Linear, nn.Embedding)):
        if isinstance(module, nn.Linear):
            memo["input"] = module.in_features
        else:
            memo["vocab"], memo["embed"] = module.num_embeddings, module.embedding_dim
        for name in memo:
            org[name] = ("self", "", -1, False, ())
        info.weight_owner, info.weight_name, info.weight_origin = module, "weight", "self.weight"
        return info
    path, rnn = _rnn_of(module)
    if rnn is not None:
        dirs = 2 if rnn.bidirectional else 1
        proj = getattr(rnn, "proj_size", 0)
        values = {
            "layers": rnn.num_layers,
            "dirs": dirs,
            "hidden": proj or rnn.hidden_size,
            "input": rnn.input_size,
        }
        if isinstance(rnn, nn.LSTM):
            values["cell"] = rnn.hidden_size
        for name, value in values.items():
            memo[name] = value
            org[name] = (path, "", -1, False, ())
        info.batch_first = rnn.batch_first
        info.weight_owner, info.weight_name = rnn, rnn._flat_weights_names[0]
        info.weight_origin = f"{path}.{rnn._flat_weights_names[0]}"
        info.chain = _chain(module, path)
    extra = getattr(module, "shape_dims", None)
    if callable(extra):
        for name, value in extra().items():
            memo[name] = int(value)
            org[name] = ("self.shape_dims()", "", -1, False, ())
    return info


def _info(module: nn.Module) -> _ModuleInfo:
    info = module.__dict__.get(_INFO_KEY)
    if info is None or not info.current():
        info = module.__dict__[_INFO_KEY] = _module_info(module)
    return typing.cast(_ModuleInfo, info)


def module_context(name: str, module: nn.Module | None) -> Context:
    """A call context with the sizes the module knows already bound."""
    if module is None:
        return Context(name, None, {}, {})
    info = _info(module)
    ctx = Context(name, module, info.memo.copy(), {}, info.org)
    bf = getattr(module, "batch_first", info.batch_first)
    ctx.batch_first = bf if isinstance(bf, bool) else info.batch_first
    ctx.weight = info.weight()
    ctx.weight_origin = info.weight_origin
    return ctx


# ---------------------------------------------------------------------------------------------------------
# The check itself
# ---------------------------------------------------------------------------------------------------------


class _Mismatch(Exception):
    """Internal: carries what differed to the message composer."""

    def __init__(
        self, reason: str, axis: int | None = None, dim: DimSpec | None = None, expected: Any = None
    ):
        super().__init__(reason)
        self.reason, self.axis, self.dim, self.expected = reason, axis, dim, expected
        # the innermost spec/value/argument that failed (set by _check on the way out)
        self.spec: _Spec | None = None
        self.value: Any = None
        self.arg = ""


_DTYPE_NAMES: dict[torch.dtype, str] = {}


def _dtype_name(t: Tensor) -> str:
    dtype = t.dtype
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).rpartition(".")[2]
    return name


def _check_tensor(spec: TensorSpec, value: Any, arg: str, ctx: Context) -> None:
    if not isinstance(value, Tensor):
        raise _Mismatch("type")
    if spec.dtypes is not None and _dtype_name(value) not in spec.dtypes:
        raise _Mismatch("dtype")
    shape = value.shape
    if spec.variadic_at >= 0:
        _check_variadic(spec, shape, arg, ctx)
        return
    if len(shape) != spec.ndim:
        raise _Mismatch("ndim")
    memo = ctx.memo
    exprs = None
    for axis, kind, name, size, via_seq, d in spec.plan_bf if ctx.batch_first else spec.plan_tf:
        if kind is NAMED:
            bound = memo.get(name)
            if bound is None:
                memo[name] = shape[axis]
                ctx.org[name] = (None, arg, axis, via_seq, shape)
            elif bound != shape[axis]:
                raise _Mismatch("axis", axis, d, bound)
        elif kind is FIXED:
            if shape[axis] != size:
                raise _Mismatch("axis", axis, d, size)
        elif kind is EXPR:
            exprs = [(axis, d)] if exprs is None else [*exprs, (axis, d)]
    if exprs is not None:
        _check_exprs(exprs, shape, memo)


def _check_exprs(exprs: list[tuple[int, DimSpec]], shape: torch.Size, memo: dict[str, Any]) -> None:
    for axis, d in exprs:
        want = _eval_expr(d, memo)
        if want is None:
            raise _Mismatch("unbound", axis, d)
        if shape[axis] != want:
            raise _Mismatch("axis", axis, d, want)


def _check_variadic(spec: TensorSpec, shape: torch.Size, arg: str, ctx: Context) -> None:
    dims = spec.dims_bf if ctx.batch_first else spec.dims_tf
    ndim = len(shape)
    memo = ctx.memo
    v = spec.variadic_at
    after = len(dims) - v - 1
    if ndim < len(dims) - 1:
        raise _Mismatch("ndim")
    var = dims[v]
    if var.name:
        got = tuple(shape[v : ndim - after])
        bound = memo.get(var.name)
        if bound is None:
            memo[var.name] = got
            ctx.org[var.name] = (f"{arg} axes {v}..{ndim - after - 1}", arg, v, False, shape)
        elif bound != got:
            raise _Mismatch("variadic", v, var, bound)
    exprs = []
    for axis, d in [*enumerate(dims[:v]), *((ndim - after + j, d) for j, d in enumerate(dims[v + 1 :]))]:
        if d.kind is NAMED:
            bound = memo.get(d.name)
            if bound is None:
                memo[d.name] = shape[axis]
                ctx.org[d.name] = (None, arg, axis, d.via_seq, shape)
            elif bound != shape[axis]:
                raise _Mismatch("axis", axis, d, bound)
        elif d.kind is FIXED:
            if shape[axis] != d.size:
                raise _Mismatch("axis", axis, d, d.size)
        elif d.kind is EXPR:
            exprs.append((axis, d))
    _check_exprs(exprs, shape, memo)


def _eval_expr(d: DimSpec, memo: dict[str, Any]) -> int | None:
    try:
        values = [memo[name] for name in d.args]
    except KeyError:
        return None
    assert d.fn is not None
    return int(d.fn(*values))


def _kind_of(value: Any) -> type:
    if isinstance(value, PackedSequence):  # a tuple subclass: test it first
        return PackedSpec
    if isinstance(value, Tensor):
        return TensorSpec
    if isinstance(value, tuple):
        return TupleSpec
    return OtherSpec


def check_value(spec: _Spec, value: Any, arg: str, ctx: Context) -> None:
    """Check one value against its spec, binding sizes into ``ctx``; raise ShapeError on a mismatch."""
    try:
        _check(spec, value, arg, ctx)
    except _Mismatch as m:
        _raise(spec, value, arg, ctx, m)


def _raise(spec: _Spec, value: Any, arg: str, ctx: Context, m: _Mismatch) -> typing.NoReturn:
    from ._messages import compose

    raise ShapeError(compose(spec, value, arg, ctx, m)) from None


def _check(spec: _Spec, value: Any, arg: str, ctx: Context) -> None:
    try:
        if type(spec) is TensorSpec:
            _check_tensor(spec, value, arg, ctx)
        else:
            _check_inner(spec, value, arg, ctx)
    except _Mismatch as m:
        if m.spec is None:
            m.spec, m.value, m.arg = spec, value, arg
        raise


def _check_inner(spec: _Spec, value: Any, arg: str, ctx: Context) -> None:
    cls = type(spec)
    if cls is TensorSpec:
        _check_tensor(typing.cast(TensorSpec, spec), value, arg, ctx)
    elif cls is UnionSpec:
        u = typing.cast(UnionSpec, spec)
        if value is None:
            if not u.allows_none:
                raise _Mismatch("none")
            return
        kind = _kind_of(value)
        candidates = [o for o in u.options if type(o) is kind or type(o) is OtherSpec]
        if not candidates:
            raise _Mismatch("union-type")
        if len(candidates) == 1:
            _check(candidates[0], value, arg, ctx)
            return
        first: _Mismatch | None = None
        for option in candidates:
            saved, saved_org = ctx.memo.copy(), ctx.org.copy()  # a failed option must leave no bindings
            try:
                _check(option, value, arg, ctx)
            except _Mismatch as m:
                ctx.memo.clear()
                ctx.memo.update(saved)
                ctx.org.clear()
                ctx.org.update(saved_org)
                first = first or m
                continue
            return
        assert first is not None
        raise first
    elif cls is TupleSpec:
        t = typing.cast(TupleSpec, spec)
        if not isinstance(value, tuple) or isinstance(value, PackedSequence):
            raise _Mismatch("tuple")
        if len(value) != len(t.items):
            raise _Mismatch("tuple-len")
        for i, (item_spec, item) in enumerate(zip(t.items, value, strict=True)):
            _check(item_spec, item, f"{arg}[{i}]", ctx)
    elif cls is PackedSpec:
        p = typing.cast(PackedSpec, spec)
        if not isinstance(value, PackedSequence):
            raise _Mismatch("packed")
        batch = int(value.batch_sizes[0])
        bound = ctx.memo.get("batch")
        if bound is None:
            ctx.memo["batch"] = batch
            ctx.org["batch"] = (f"{arg}.batch_sizes[0]", arg, -1, False, ())
        elif bound != batch:
            raise _Mismatch("packed-batch", None, DimSpec(NAMED, name="batch"), bound)
        if p.features is not None:
            _check(p.features, value.data, f"{arg}.data", ctx)
    else:
        o = typing.cast(OtherSpec, spec)
        if not is_bearable(value, o.hint):
            raise _Mismatch("other")


def check_devices(ctx: Context, arg: str, value: Any) -> None:
    """Tensors of one call share a device (and floating ones the weights' dtype); ``lengths`` may stay on CPU."""
    tensors: list[tuple[str, Tensor]]
    if isinstance(value, Tensor):
        tensors = [(arg, value)]
    elif isinstance(value, PackedSequence):
        tensors = [(f"{arg}.data", value.data)]
    elif isinstance(value, tuple):
        tensors = [(f"{arg}[{i}]", v) for i, v in enumerate(value) if isinstance(v, Tensor)]
    else:
        return
    for name, t in tensors:
        if name == "lengths" or name.endswith("_lengths"):
            continue
        ref = ctx.weight
        if ref is not None:
            if t.device != ref.device:
                from ._messages import device_message

                raise ShapeError(device_message(ctx, name, t, ctx.weight_origin, ref)) from None
            if t.is_floating_point() and t.dtype != ref.dtype:
                from ._messages import dtype_message

                raise ShapeError(dtype_message(ctx, name, t, ctx.weight_origin, ref)) from None
        elif ctx.ref_tensor is None:
            ctx.ref_tensor = (name, t)
        elif t.device != ctx.ref_tensor[1].device:
            from ._messages import device_message

            raise ShapeError(device_message(ctx, name, t, *ctx.ref_tensor)) from None


# ---------------------------------------------------------------------------------------------------------
# The decorator
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    name: str
    index: int  # position, or -1 for keyword-only
    default: Any
    spec: _Spec | None
    var: bool  # *args / **kwargs (not checked)


def _hint_of(fn: Callable[..., Any], name: str) -> Any:
    hints = typing.get_type_hints(fn, include_extras=True)
    return hints.get(name, inspect.Parameter.empty)


def shapecheck(fn: F) -> F:
    """Check a function's or method's jaxtyping annotations at every call, with readable errors.

    Works on plain functions and on methods of ``nn.Module`` (``forward``, ``step``, ...). On a method, the
    sizes the module knows are bound before any argument: ``layers``, ``dirs``, ``hidden``, ``cell`` and
    ``input`` from its first ``nn.RNN/GRU/LSTM`` (or the module itself), and any names its
    ``shape_dims()`` returns. ``*seq`` reads ``self.batch_first``. The tensors must share the weights'
    device (and floating ones their dtype); an argument named ``lengths`` may stay on the CPU.

    Raises:
        ShapeError: naming the argument, the axis, the expected and actual sizes, where each bound size came
            from, and a hint for the usual mistake.
    """
    if not _env_enabled():
        return fn
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    params: list[_Param] = []
    qualname = fn.__qualname__
    # a method's first parameter is its instance, whatever it is called (self, s, model): a function defined
    # in a class whose first positional parameter has no annotation; checked for nn.Module at call time
    in_class = "." in qualname and qualname.rsplit(".", 2)[-2] != "<locals>"
    is_method = False
    for i, (name, p) in enumerate(sig.parameters.items()):
        if i == 0 and (
            name == "self"
            or (in_class and name not in hints and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        ):
            is_method = True
            continue
        var = p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        index = i if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) else -1
        spec = None if var else parse_annotation(hints.get(name, inspect.Parameter.empty))
        params.append(_Param(name, index, p.default, spec, var))
    checked = [p for p in params if p.spec is not None]
    ret_spec = parse_annotation(hints.get("return", inspect.Parameter.empty))

    def values(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """The checked parameters' values in this call (``inspect.Parameter.empty`` for a missing one)."""
        n = len(args)
        return [
            args[p.index] if 0 <= p.index < n else kwargs[p.name] if p.name in kwargs else p.default
            for p in checked
        ]

    def run_checks(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Context:
        module = args[0] if is_method and isinstance(args[0], nn.Module) else None
        ctx = module_context(fn.__name__ if module is not None else qualname, module)
        for p, value in zip(checked, values(args, kwargs), strict=True):
            if value is inspect.Parameter.empty:
                continue  # a missing argument: Python itself reports it
            try:
                _check(p.spec, value, p.name, ctx)  # type: ignore[arg-type]
            except _Mismatch as m:
                _raise(p.spec, value, p.name, ctx, m)  # type: ignore[arg-type]
            if isinstance(value, Tensor) or isinstance(value, tuple):
                check_devices(ctx, p.name, value)
        return ctx

    plain_seen: set[Any] = set()  # the passed call signatures of a function that is not a module's method

    def call_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, set[Any]] | None:
        """The call's signature and the set of passed ones it belongs to (None: check it in full)."""
        parts: list[Any] = []
        for value in values(args, kwargs):
            sig = _signature(value)  # a missing argument (Parameter.empty) is _UNKNOWN: checked in full
            if sig is _UNKNOWN:
                return None
            parts.append(sig)
        seen = plain_seen
        module = args[0] if is_method and args and isinstance(args[0], nn.Module) else None
        if module is not None:
            info = _info(module)
            seen = info.seen.setdefault(fn, set())
            w = info.weight()
            bf = getattr(module, "batch_first", info.batch_first)
            parts += (bf, None if w is None else (w.dtype, w.device))
        if len(seen) > _MEMO_LIMIT:
            seen.clear()
        return tuple(parts), seen

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _State.enabled:
            return fn(*args, **kwargs)
        if torch.compiler.is_compiling():
            _run_checks_eagerly(run_checks, args, kwargs)
            return fn(*args, **kwargs)
        memo = call_key(args, kwargs) if _State.memo else None
        if memo is None:
            ctx: Context | None = run_checks(args, kwargs)
        else:
            key, seen = memo
            if key in seen:
                ctx = None  # these inputs passed before: the same checks would pass again
            else:
                ctx = run_checks(args, kwargs)
                seen.add(key)
        result = fn(*args, **kwargs)
        if ret_spec is not None:
            if memo is None:
                check_value(ret_spec, result, "return value", ctx or run_checks(args, kwargs))
            else:
                out = _signature(result)
                if out is _UNKNOWN or (key, out) not in seen:
                    check_value(ret_spec, result, "return value", ctx or run_checks(args, kwargs))
                    if out is not _UNKNOWN:
                        seen.add((key, out))
        return result

    wrapper.__rnnshapes_checked__ = True  # type: ignore[attr-defined]
    return typing.cast(F, wrapper)


_UNKNOWN = object()  # a value whose check reads more than its signature shows: such calls are always checked
_MEMO_LIMIT = 512  # signatures kept per checked function and module (variable lengths make a few dozen)


def _signature(value: Any) -> Any:
    """What the fast path reads from a value, as a hashable key: shape, dtype and device of a tensor,
    recursively through tuples; ``_UNKNOWN`` for anything else (a PackedSequence's batch is read from its
    values)."""
    if isinstance(value, Tensor):
        return (value.shape, value.dtype, value.device)
    if value is None:
        return None
    if type(value) is tuple:
        items = []
        for v in value:
            sig = _signature(v)
            if sig is _UNKNOWN:
                return _UNKNOWN
            items.append(sig)
        return tuple(items)
    return _UNKNOWN


def _run_checks(run: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    run(args, kwargs)


_EAGER: Callable[..., None] | None = None  # _run_checks behind torch.compiler.disable, made on first use


def _run_checks_eagerly(run: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Under ``torch.compile`` the checks run outside the graph, on real tensors (a deliberate graph break).

    ``torch.compiler.disable`` imports torch._dynamo (about a second), so it is applied at the first compiled
    call, when dynamo is loaded anyway, not at ``import rnnshapes``. One module-level function and one global
    keep it to a single recompilation of this frame, whatever the number of checked functions.
    """
    global _EAGER
    if _EAGER is None:
        _EAGER = torch.compiler.disable(_run_checks)
    _EAGER(run, args, kwargs)
