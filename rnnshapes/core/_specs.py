"""What a check compares against: annotations parsed once into specs, and the context of one checked call.

The message composer (``_messages``) and the checker (``_checks``) both read these types; keeping them here is
what lets the checker import the composer without a cycle.
"""

import ast
import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import jaxtyping
from jaxtyping import Float
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

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
    lists: bool = False  # LSTMState: torch takes the pair as a list too


@dataclass(eq=False)
class SeqOfSpec(_Spec):
    """``tuple[X, ...]`` or ``list[X]``: every item checked against X, sharing the call's sizes."""

    label: str
    item: _Spec
    container: type


@dataclass(eq=False)
class PackedSpec(_Spec):
    label: str
    features: TensorSpec | None  # data as "_total <dims>": rows of its own
    features_total: TensorSpec | None = None  # data as "total <dims>": where one packed argument gives total


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
            # the rows of one packed batch: anonymous, since two packed arguments have their own totals
            spec = parse_annotation(Float[Tensor, f"_total {marker.dims}"])
            named = parse_annotation(Float[Tensor, f"total {marker.dims}"])
            assert isinstance(spec, TensorSpec) and isinstance(named, TensorSpec)
            feats, feats_total = spec, named
        else:
            feats_total = None
        return PackedSpec(f'Packed[PackedSequence, "{marker.dims if marker else ""}"]', feats, feats_total)
    if ann is PackedSequence or ann is Packed:  # a bare Packed: any PackedSequence, its features unnamed
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
            label,
            typing.cast(tuple[_Spec, ...], tuple(i or OtherSpec("Any", Any) for i in items)),
            lists=ann == LSTMState,
        )
    if (origin is tuple and len(args) == 2 and args[1] is Ellipsis) or (origin is list and len(args) == 1):
        item = parse_annotation(args[0])
        if item is None:
            return None
        label = f"tuple[{item.label}, ...]" if origin is tuple else f"list[{item.label}]"
        return SeqOfSpec(label, item, origin)
    return OtherSpec(_label(ann), ann)


def _resolvable_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The annotations that resolve, one by one (a name imported only under TYPE_CHECKING is left out)."""
    hints: dict[str, Any] = {}
    for name, ann in getattr(fn, "__annotations__", {}).items():
        try:
            hints[name] = typing.get_type_hints(_OneHint(ann, fn), include_extras=True)["x"]
        except (
            NameError,
            AttributeError,
        ):  # torch.utils.tensorboard.X with tensorboard imported for mypy only
            continue
    return hints


class _OneHint:
    """One annotation of ``fn`` alone, for ``typing.get_type_hints`` (which resolves all or nothing)."""

    def __init__(self, ann: Any, fn: Callable[..., Any]) -> None:
        self.__annotations__ = {"x": ann}
        self.__globals__ = getattr(
            inspect.unwrap(fn), "__globals__", {}
        )  # the user's module, not a wrapper's


def _holds_packed(spec: _Spec | None) -> int:
    """How many packed batches an argument of this spec can hold (2: more than one)."""
    if isinstance(spec, PackedSpec):
        return 1
    if isinstance(spec, UnionSpec):
        return max((_holds_packed(o) for o in spec.options), default=0)
    if isinstance(spec, TupleSpec):
        return min(2, sum(_holds_packed(o) for o in spec.items))
    if isinstance(spec, SeqOfSpec):
        return 2 * min(1, _holds_packed(spec.item))
    return 0


def _uses_seq(spec: _Spec) -> bool:
    if isinstance(spec, TensorSpec):
        return spec.has_seq
    if isinstance(spec, PackedSpec):
        return spec.features is not None and spec.features.has_seq
    if isinstance(spec, UnionSpec):
        return any(_uses_seq(o) for o in spec.options)
    if isinstance(spec, TupleSpec):
        return any(_uses_seq(o) for o in spec.items)
    if isinstance(spec, SeqOfSpec):
        return _uses_seq(spec.item)
    return False


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
        "autocast",
        "call_args",
        "whole",
        "layout_known",
        "bind_total",
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
        self.autocast = False  # torch.autocast is on for the weights' device: floating dtypes may differ
        self.call_args: dict[str, Any] | None = None  # guard, nn.MultiheadAttention: the call's arguments
        self.whole: Any = None  # a message's whole argument (the (h, c) pair whose h is at fault)
        self.layout_known = True  # False: no recurrent layer tells *seq's order; both orders are tried
        self.bind_total = False  # one packed argument in the call: its rows bind `total` for the others

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


def _eval_expr(d: DimSpec, memo: dict[str, Any]) -> int | None:
    try:
        values = [memo[name] for name in d.args]
    except KeyError:
        return None
    assert d.fn is not None
    return int(d.fn(*values))
