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
4. Devices and exact dtypes are not compared (a forward may move or cast what it gets; ``guard`` compares
   them where a layer receives them); the dtype kind an annotation names (``Float``, ``Int``) is.
5. The return value is checked with the same bindings.
6. A call whose signature passed before is not checked again: the shapes, dtypes and devices of its tensor
   arguments, with the module's layout and weights (and the function), key a set of passed signatures kept
   per module (dropped when its recurrent layer is replaced). A training loop pays the full check once per
   batch shape. Any argument that is not a tensor, None or a tuple of them is always checked in full.

The semantics of the dimension strings are jaxtyping's (a property test checks that this fast path accepts
and rejects exactly what ``jaxtyped(typechecker=beartype)`` does on plain annotations); ``*seq``, module
binding, the LSTM pair, PackedSequence and device checks are what rnnshapes adds.
"""

import functools
import inspect
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from beartype.door import is_bearable
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ._bind import _info, module_context
from ._errors import ShapeError
from ._messages import compose
from ._precision import autocast_enabled
from ._specs import (
    EXPR,
    FIXED,
    NAMED,
    Context,
    DimSpec,
    OtherSpec,
    PackedSpec,
    SeqOfSpec,
    TensorSpec,
    TupleSpec,
    UnionSpec,
    _eval_expr,
    _holds_packed,
    _Mismatch,
    _resolvable_hints,
    _Spec,
    _uses_seq,
    parse_annotation,
)
from ._specs import F as F
from ._specs import Hidden as Hidden
from ._specs import LSTMState as LSTMState
from ._specs import Packed as Packed
from ._switch import _env_enabled, _State
from ._switch import checks as checks
from ._switch import checks_enabled as checks_enabled
from ._weights_messages import device_message, dtype_message

# ---------------------------------------------------------------------------------------------------------
# The check itself
# ---------------------------------------------------------------------------------------------------------


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
                if name == "time" and shape[axis] == 0 and isinstance(ctx.module, nn.RNNBase):
                    raise _Mismatch("axis", axis, d, "at least 1 (a recurrent layer needs a step)")
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
        _check_exprs(exprs, shape, ctx)


def _check_exprs(exprs: list[tuple[int, DimSpec]], shape: torch.Size, ctx: Context) -> None:
    for axis, d in exprs:
        want = _eval_expr(d, ctx.memo)
        if want is None:
            # a name nothing bound (a free function's Hidden has no layer to give layers*dirs; layers that
            # disagree on dirs): the annotation cannot be computed, which the call does not prove wrong
            continue
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
        key = f"*{var.name}"  # jaxtyping keeps *batch apart from a single batch: so do the bindings
        bound = memo.get(key)
        if bound is None:
            memo[key] = got
            ctx.org[key] = (f"{arg} axes {v}..{ndim - after - 1}", arg, v, False, shape)
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
    _check_exprs(exprs, shape, ctx)


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
        candidates = [
            o
            for o in u.options
            if type(o) is kind
            or type(o) is OtherSpec
            or (type(o) is SeqOfSpec and isinstance(value, o.container))  # type: ignore[attr-defined]
            or (type(o) is TupleSpec and o.lists and type(value) is list)  # type: ignore[attr-defined]
        ]
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
                if first is None or (first.reason == "dtype" and m.reason != "dtype"):
                    first = m  # an option of the right dtype explains a mismatch better than one of another
                continue
            return
        assert first is not None
        raise first
    elif cls is TupleSpec:
        t = typing.cast(TupleSpec, spec)
        if t.lists and type(value) is list:
            value = tuple(value)  # an LSTM's [h, c]: torch takes it
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
        if value.data.shape[0] != int(value.batch_sizes.sum()):
            raise _Mismatch("packed-rows", None, None, int(value.batch_sizes.sum()))
        # one packed argument's rows are `total` for the others; a returned packed batch has rows of its own
        features = p.features_total if ctx.bind_total and not arg.startswith("return value") else p.features
        if features is not None:
            _check(features, value.data, f"{arg}.data", ctx)
    elif cls is SeqOfSpec:
        q = typing.cast(SeqOfSpec, spec)
        if not isinstance(value, q.container) or isinstance(value, PackedSequence):
            raise _Mismatch("other")
        for i, item in enumerate(typing.cast(list[Any], value)):
            _check(q.item, item, f"{arg}[{i}]", ctx)
    else:
        o = typing.cast(OtherSpec, spec)
        try:
            fits = is_bearable(value, o.hint)
        except Exception:  # an annotation beartype cannot check alone (jaxtyping inside a dict): not refused
            fits = True
        if not fits:
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
                raise ShapeError(device_message(ctx, name, t, ctx.weight_origin, ref)) from None
            if t.dtype != ref.dtype and (
                (t.is_floating_point() and not ctx.autocast) or t.is_complex() != ref.is_complex()
            ):
                raise ShapeError(dtype_message(ctx, name, t, ctx.weight_origin, ref)) from None
        elif ctx.ref_tensor is None:
            ctx.ref_tensor = (name, t)
        elif t.device != ctx.ref_tensor[1].device:
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


def shapecheck(fn: F) -> F:
    """Check a function's or method's jaxtyping annotations at every call, with readable errors.

    Works on plain functions and on methods of ``nn.Module`` (``forward``, ``step``, ...). On a method, the
    sizes the module knows are bound before any argument: ``layers``, ``dirs``, ``hidden``, ``cell`` and
    ``input`` from its recurrent layers (``nn.RNN/GRU/LSTM``, or the module itself) where they agree, and any
    names its ``shape_dims()`` returns. ``*seq`` reads ``self.batch_first``, else the recurrent layers'; with
    neither (a free function, a loop of cells) both orders are tried. Only the arguments passed are checked,
    never an unused default. Devices and dtypes are not compared here: a forward may move or cast what it
    gets; ``rnnshapes.guard`` checks them where each layer receives them.

    Raises:
        ShapeError: naming the argument, the axis, the expected and actual sizes, where each bound size came
            from, and a hint for the usual mistake.
    """
    if not _env_enabled():
        return fn
    sig = inspect.signature(fn)
    qualname = fn.__qualname__
    # a method's first parameter is its instance, whatever it is called (self, s, model): a function defined
    # in a class whose first positional parameter has no annotation; checked for nn.Module at call time
    in_class = "." in qualname and qualname.rsplit(".", 2)[-2] != "<locals>"
    raw = getattr(fn, "__annotations__", {})
    is_method = False
    positional: list[tuple[str, int, Any, bool]] = []  # (name, index or -1, default, *args/**kwargs)
    for i, (name, p) in enumerate(sig.parameters.items()):
        if i == 0 and (
            name == "self"
            or (in_class and name not in raw and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        ):
            is_method = True
            continue
        var = p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        index = i if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) else -1
        positional.append((name, index, p.default, var))

    parsed: list[Any] = []  # [checked params, return spec, uses *seq]: filled once the hints resolve

    def parse(first_call: bool = False) -> None:
        # under `from __future__ import annotations` a hint may name a class defined later in the module: the
        # hints are then read at the first call, not while the module is still being executed; one that names
        # what exists only for type checkers (an import under TYPE_CHECKING) is left unchecked
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except (NameError, AttributeError):
            if not first_call:
                raise
            hints = _resolvable_hints(fn)
        params = [
            _Param(name, index, default, None if var else parse_annotation(hints.get(name, _EMPTY)), var)
            for name, index, default, var in positional
        ]
        checked = [p for p in params if p.spec is not None]
        ret_spec = parse_annotation(hints.get("return", _EMPTY))
        seq = any(_uses_seq(s) for s in [*(p.spec for p in checked), ret_spec] if s is not None)
        packed = sum(_holds_packed(p.spec) for p in checked)  # a list of packed batches counts as many
        parsed[:] = [checked, ret_spec, seq, packed <= 1]  # one packed argument: its rows are `total`

    try:
        parse()
    except (NameError, AttributeError):
        pass

    def values(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """The checked parameters' values in this call (``_NOT_PASSED`` for a default left alone)."""
        n = len(args)
        return [
            args[p.index] if 0 <= p.index < n else kwargs[p.name] if p.name in kwargs else _NOT_PASSED
            for p in parsed[0]
        ]

    def walk(ctx: Context, vals: list[Any]) -> tuple[_Param, Any, _Mismatch] | None:
        for p, value in zip(parsed[0], vals, strict=True):
            if value is _NOT_PASSED:
                continue  # a default the caller left alone, or a missing argument Python reports itself
            try:
                _check(p.spec, value, p.name, ctx)
            except _Mismatch as m:
                return p, value, m
        return None

    def context(name: str, module: nn.Module | None, flip: bool = False) -> Context:
        ctx = module_context(name, module)
        ctx.bind_total = parsed[3]
        if flip:  # *seq in the other order (its order is unknown)
            ctx.batch_first, ctx.layout_known = not ctx.batch_first, False
        return ctx

    def run_checks(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Context:
        if not parsed:  # (also under torch.compile, where this runs outside the graph)
            parse(first_call=True)
        module = args[0] if is_method and args and isinstance(args[0], nn.Module) else None
        name = fn.__name__ if module is not None else qualname
        ctx = context(name, module)
        vals = values(args, kwargs)
        failed = walk(ctx, vals)
        if failed is not None and not ctx.layout_known and parsed[2]:
            # no recurrent layer tells *seq's order: the call passes if the other order fits
            other = context(name, module, flip=True)
            if walk(other, vals) is None:
                return other
        if failed is not None:
            p, value, m = failed
            _raise(typing.cast(_Spec, p.spec), value, p.name, ctx, m)
        return ctx

    plain_seen: set[Any] = set()  # the passed call signatures of a function that is not a module's method

    def call_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, set[Any]] | None:
        """The call's signature and the set of passed ones it belongs to (None: check it in full)."""
        parts: list[Any] = []
        for value in values(args, kwargs):
            sig = _signature(value)
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
            parts += (
                bf,
                None if w is None else (w.dtype, w.device, autocast_enabled(w.device)),
            )
        if len(seen) > _MEMO_LIMIT:
            seen.clear()
        return tuple(parts), seen

    def check_return(result: Any, ctx: Context | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ctx = ctx or run_checks(args, kwargs)
        try:
            _check(parsed[1], result, "return value", ctx)
        except _Mismatch as m:
            if not ctx.layout_known and parsed[2]:  # *seq's order unknown: the other order, arguments and all
                other = context(ctx.name, ctx.module, flip=True)
                try:
                    if walk(other, values(args, kwargs)) is None:
                        _check(parsed[1], result, "return value", other)
                        return
                except _Mismatch:
                    pass
            _raise(parsed[1], result, "return value", ctx, m)

    def checked_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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
        if parsed[1] is not None:
            if memo is None:
                check_return(result, ctx, args, kwargs)
            else:
                out = _signature(result)
                if out is _UNKNOWN or (key, out) not in seen:
                    check_return(result, ctx, args, kwargs)
                    if out is not _UNKNOWN:
                        seen.add((key, out))
        return result

    def traced_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Under torch.jit.trace sizes are traced values: comparing them makes the tracer warn, so the checks
        (never the user's forward, whose own warnings matter) run with TracerWarning filtered."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            ctx = run_checks(args, kwargs)
        result = fn(*args, **kwargs)
        if parsed[1] is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                check_return(result, ctx, args, kwargs)
        return result

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _State.enabled:
            return fn(*args, **kwargs)
        if torch.compiler.is_compiling():
            _run_checks_eagerly(run_checks, args, kwargs)
            return fn(*args, **kwargs)
        if not parsed:
            parse(first_call=True)  # a forward reference is resolved by now
        if torch.jit.is_tracing():
            return traced_call(args, kwargs)
        return checked_call(args, kwargs)

    wrapper.__rnnshapes_checked__ = True  # type: ignore[attr-defined]
    return typing.cast(F, wrapper)


_EMPTY = inspect.Parameter.empty
_NOT_PASSED = object()  # a parameter the call left at its default: never checked (jaxtyping + beartype agree)


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
    if value is _NOT_PASSED:
        return "not passed"
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
