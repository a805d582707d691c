"""`guard(model)`: the same checks on any existing model, without editing its code (forward pre-hooks).

Every ``nn.RNN/GRU/LSTM``, ``nn.RNNCell/GRUCell/LSTMCell``, ``nn.Embedding``, ``nn.Linear`` and
``nn.MultiheadAttention`` inside the model is checked when it is called, against its own configuration: the input's feature axis, the state's
``(layers*dirs, batch, hidden)`` against the input's batch, LSTM ``(h, c)``, packed batches, index dtypes and
ranges, devices and dtypes. Whatever torch runs correctly passes: unbatched calls, LSTM states as lists,
``torch.autocast``, ``torch.func.vmap``; subclasses that redefine ``forward`` are left unchecked (their
arguments are theirs) and listed in ``GuardHandle.skipped``.

What a layer cannot know on its own is the layout of the *model's* interface: a ``(time, batch, input)``
tensor handed to a batch_first RNN runs in torch. ``guard(model, batch_axis=0)`` (or ``1``) declares it: the
model's own first input then gives ``batch`` to every layer of the call, which catches such a transposition
inside the model: a layer whose sequence input holds that batch on its time axis (and one of the model input's
other sizes on its batch axis) is refused. A layer run on another batch on purpose (a decoder whose batch
shrinks as sequences end, empty sequences left out of a packed batch, words folded into the batch) passes,
its arguments checked against each other. Without ``batch_axis`` (the default) no batch is carried from layer
to layer, so a model that transposes its input on purpose (the course's 13_1 classifier) is never refused.

A hook is a small picklable object (``torch.save(model)``, ``pickle``, ``copy.deepcopy`` keep the checks),
remembers the call signatures that passed (a loop pays the full check once per shape), runs its check
outside the graph under ``torch.compile`` and does nothing while ``torch.export`` traces.
"""

import collections
import functools
import typing
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import AbstractDtype, Bool, Float, Inexact
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils.hooks import RemovableHandle

from ._bind import _INFO_KEY, module_context
from ._checks import _UNKNOWN, _signature, check_devices, check_value
from ._errors import ShapeError
from ._precision import autocast_enabled
from ._specs import Context, Hidden, LSTMState, Packed, _Spec, parse_annotation
from ._switch import _State


class Index(AbstractDtype):
    """The dtypes ``nn.Embedding`` takes as indices: int64 (``torch.long``) or int32."""

    dtypes = ["int64", "int32"]


def _spec(ann: Any) -> _Spec:
    spec = parse_annotation(ann)
    assert spec is not None
    return spec


def _layer_specs(F: Any) -> dict[str, tuple[_Spec, _Spec]]:
    """(input, state) specs of each kind of layer, batched and unbatched; ``F`` is Float, or Inexact for
    layers with complex weights (torch runs complex recurrent layers)."""
    hidden: Any = Hidden if F is Float else F[Tensor, "layers*dirs batch hidden"]
    lstm_state: Any = (
        LSTMState
        if F is Float
        else tuple[F[Tensor, "layers*dirs batch hidden"], F[Tensor, "layers*dirs batch cell"]]
    )
    sequence = _spec(F[Tensor, "*seq input"] | Packed[PackedSequence, "input"])
    return {
        "rnn": (sequence, _spec(hidden | None)),
        "lstm": (sequence, _spec(lstm_state | None)),
        "rnn-unbatched": (_spec(F[Tensor, "time input"]), _spec(F[Tensor, "layers*dirs hidden"] | None)),
        "lstm-unbatched": (
            _spec(F[Tensor, "time input"]),
            _spec(tuple[F[Tensor, "layers*dirs hidden"], F[Tensor, "layers*dirs cell"]] | None),
        ),
        "cell": (_spec(F[Tensor, "batch input"]), _spec(F[Tensor, "batch hidden"] | None)),
        "lstmcell": (
            _spec(F[Tensor, "batch input"]),
            _spec(tuple[F[Tensor, "batch hidden"], F[Tensor, "batch hidden"]] | None),
        ),
        "cell-unbatched": (_spec(F[Tensor, " input"]), _spec(F[Tensor, " hidden"] | None)),
        "lstmcell-unbatched": (
            _spec(F[Tensor, " input"]),
            _spec(tuple[F[Tensor, " hidden"], F[Tensor, " hidden"]] | None),
        ),
    }


_SPECS = _layer_specs(Float)
_SPECS_COMPLEX = _layer_specs(Inexact)  # for layers with complex weights
_INDICES = _spec(Index[Tensor, "..."])
_LINEAR_INPUT = _spec(Inexact[Tensor, "... input"])

# the layer types guard checks, with the forward whose arguments it knows
_KINDS: tuple[tuple[type[nn.Module], Any, str], ...] = (
    (nn.LSTM, nn.LSTM.forward, "lstm"),
    (nn.GRU, nn.GRU.forward, "rnn"),
    (nn.RNN, nn.RNN.forward, "rnn"),
    (nn.LSTMCell, nn.LSTMCell.forward, "lstmcell"),
    (nn.GRUCell, nn.GRUCell.forward, "cell"),
    (nn.RNNCell, nn.RNNCell.forward, "cell"),
    (nn.Embedding, nn.Embedding.forward, "embedding"),
    (nn.Linear, nn.Linear.forward, "linear"),
    (nn.MultiheadAttention, nn.MultiheadAttention.forward, "mha"),
)

_NAMES = {cls.__name__ for cls, _, _ in _KINDS}


def _mha_specs(mod: nn.MultiheadAttention, batched: bool) -> tuple[tuple[str, _Spec], ...]:
    """(argument, spec) of an attention call: query (batch, target, embed) when batch_first, else
    (target, batch, embed); key and value over the source steps; the masks; and their unbatched forms."""
    # key and value features are named embed when they are its size, else fixed to kdim / vdim
    k = "embed" if mod.kdim == mod.embed_dim else str(mod.kdim)
    v = "embed" if mod.vdim == mod.embed_dim else str(mod.vdim)
    return _attention_specs(k, v, bool(mod.batch_first), batched)


@functools.cache
def _attention_specs(k: str, v: str, batch_first: bool, batched: bool) -> tuple[tuple[str, _Spec], ...]:
    per_head = "heads" if not batched else "batch*heads"  # a 3-D attn_mask: one (target, source) per head
    attn: Any = (
        Bool[Tensor, "target source"]
        | Float[Tensor, "target source"]
        | Bool[Tensor, f"{per_head} target source"]
        | Float[Tensor, f"{per_head} target source"]
        | None
    )  # torch takes bool or floating masks only
    if not batched:
        lead_q, lead_s, mask = "target", "source", " source"
    elif batch_first:
        lead_q, lead_s, mask = "batch target", "batch source", "batch source"
    else:
        lead_q, lead_s, mask = "target batch", "source batch", "batch source"
    return (
        ("query", _spec(Float[Tensor, f"{lead_q} embed"])),
        ("key", _spec(Float[Tensor, f"{lead_s} {k}"])),
        ("value", _spec(Float[Tensor, f"{lead_s} {v}"])),
        ("key_padding_mask", _spec(Bool[Tensor, mask] | Float[Tensor, mask] | None)),
        ("attn_mask", _spec(attn)),
    )


_MHA_ARGS = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask")


@dataclass
class _Scope:
    """The batch the guarded model's own input declared, for the length of one call (``batch_axis``)."""

    axis: int | None
    # (batch or -1, origin, the sizes of the model input's other axes: its time among them)
    stack: list[tuple[int, str, tuple[int, ...]]] = field(default_factory=list)

    def __getstate__(self) -> dict[str, Any]:
        return {"axis": self.axis, "stack": []}  # a call in flight is not part of the model


@dataclass
class GuardHandle:
    """What ``guard`` returns: the checked module paths, the skipped ones, and ``remove()``.

    Also a context manager: ``with guard(model) as handle: ...`` removes the checks on leaving the block.

    Attributes:
        modules: the paths of the checked modules (``"model"`` for the model itself).
        skipped: path -> why it is not checked (a subclass that redefines ``forward``).
    """

    modules: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    _handles: list[RemovableHandle] = field(default_factory=list, repr=False)
    _layers: list["weakref.ref[nn.Module]"] = field(default_factory=list, repr=False)

    def remove(self) -> None:
        """Remove every hook that ``guard`` installed, and what the checks kept on the layers (idempotent):
        ``torch.save(model)`` afterwards does not refer to rnnshapes."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for ref in self._layers:
            layer = ref()
            if layer is not None:
                layer.__dict__.pop(_INFO_KEY, None)
        self._layers.clear()

    def __enter__(self) -> "GuardHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


_MEMO_LIMIT = 512  # passed signatures kept per guarded layer


class _NotScriptableError(AttributeError):
    """Raised where ``torch.jit.script`` reads a guard hook's ``__name__`` to compile it: an AttributeError, so
    ``getattr(hook, "__name__", default)`` elsewhere behaves as for any object without a name."""


class _Hook:
    """Base of guard's hooks: Python callables that ``torch.jit.script`` cannot compile. It reads each hook's
    ``__name__`` first; the error then says what to do instead of naming a missing attribute."""

    @property
    def __name__(self) -> str:
        raise _NotScriptableError(
            "rnnshapes.guard's checks are Python hooks, which torch.jit.script cannot compile: script the model "
            "while it is not guarded (call handle.remove() first, or guard with `with guard(model):` around eager "
            "calls only). "
            "torch.compile, torch.export and torch.jit.trace work on a guarded model."
        )


class _LayerCheck(_Hook):
    """The forward pre-hook of one guarded layer: picklable, and quick for a signature that passed before."""

    def __init__(self, path: str, kind: str, scope: _Scope, allow_unbatched: bool) -> None:
        self.path, self.kind, self.scope, self.allow_unbatched = path, kind, scope, allow_unbatched
        self.seen: set[Any] = set()
        self.mha_args: dict[str, Any] = {}
        self.hook_id: int | None = None  # its key in the module's _forward_pre_hooks

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "seen": set(), "mha_args": {}}

    def __call__(self, mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> None:
        if not _State.enabled or kwargs is None:  # no kwargs: copied by a tool that calls it otherwise
            return  # (quantize_dynamic moves pre-hooks onto its own layers, without with_kwargs)
        if _is_compiling():
            if not torch.compiler.is_exporting():  # export wants one graph: no check while it traces
                _run_eagerly(self.check, mod, args, kwargs)
            return
        if torch.jit.is_tracing():  # sizes are traced values: comparing them makes torch.jit.trace warn
            if self._later_hooks(mod, move=False):
                return  # no reordering while torch.jit.trace runs the model twice to compare its graphs
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                self.check(mod, args, kwargs)
            return
        if self._later_hooks(mod):
            return  # this call's arguments are not final yet: checked after those hooks from the next call on
        # the fast path, a loop's repeated call: one plain tensor (and a plain state) passed positionally
        if not kwargs and 1 <= len(args) <= 2 and _State.memo and self.kind != "mha":
            x = args[0]
            hx = args[1] if len(args) == 2 else None
            if type(hx) is tuple and len(hx) == 2 and type(hx[0]) is Tensor and type(hx[1]) is Tensor:
                h, c = hx  # an LSTM's (h, c)
                state: Any = (h.shape, h.dtype, h.get_device(), c.shape, c.dtype, c.get_device())
            elif hx is None or type(hx) is Tensor:
                state = None if hx is None else (hx.shape, hx.dtype, hx.get_device())
            else:
                state = _UNKNOWN
            if type(x) is Tensor and state is not _UNKNOWN:
                w = _weight(mod)
                key = (
                    x.shape, x.dtype, x.device, state,
                    self.scope.stack[-1] if self.scope.stack else None,
                    _any_autocast(),
                    None if w is None else (w.dtype, w.device, w.shape),
                )  # fmt: skip
                if key in self.seen:
                    if self.kind == "embedding":  # the values, not the signature, decide the range
                        _check_index_range(self._label(mod), mod, x)
                    return
                self.check(mod, args, kwargs)
                self._remember(key)
                return
        self.check(mod, args, kwargs)

    def _later_hooks(self, mod: nn.Module, move: bool = True) -> bool:
        """Whether a pre-hook that is not guard's was registered after this one (a cast, weight_norm's recomputed
        weight: it changes what the layer receives); if so, this hook moves behind it."""
        hooks = mod._forward_pre_hooks
        if self.hook_id is None or len(hooks) < 2 or next(reversed(hooks.values())) is self:
            return False
        if self.hook_id not in hooks:
            return False
        keys = list(hooks)
        later = keys[keys.index(self.hook_id) + 1 :]
        if all(isinstance(hooks[k], _Hook) for k in later):
            return False  # only guard's own hooks (a model guarded twice) come after it
        if move:
            typing.cast("collections.OrderedDict[int, Any]", hooks).move_to_end(self.hook_id)
        return True

    def _remember(self, key: Any) -> None:
        if len(self.seen) > _MEMO_LIMIT:
            self.seen.clear()
        self.seen.add(key)

    def check(self, mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The full check of one call (every argument form: keywords, lists, packed batches, attention)."""
        if (
            self.kind == "mha"
        ):  # query, key, value, masks: checked in full (the masks' values matter to torch)
            self.mha_args = {**dict(zip(_MHA_ARGS, args, strict=False)), **kwargs}
            if any(getattr(self.mha_args.get(n), "is_nested", False) for n in ("query", "key", "value")):
                return  # nested tensors (torch's fast path): no fixed (batch, time) axes to check
            self._check(
                mod, self.mha_args.get("query"), None, self.scope.stack[-1] if self.scope.stack else None
            )
            return
        x = args[0] if args else kwargs.get("input")
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        if type(hx) is list:  # torch takes an LSTM state as a list too
            hx = tuple(hx)
        w = _weight(mod)
        batch = self.scope.stack[-1] if self.scope.stack else None
        key = None
        if _State.memo:
            sx, sh = _signature(x), _signature(hx)
            if sx is not _UNKNOWN and sh is not _UNKNOWN:
                key = (
                    "full",
                    sx,
                    sh,
                    batch,
                    _any_autocast(),
                    None if w is None else (w.dtype, w.device, w.shape),
                )
                if key in self.seen:
                    if self.kind == "embedding":  # the values, not the signature, decide the range
                        _check_index_range(self._label(mod), mod, typing.cast(Tensor, x))
                    return
        self._check(mod, x, hx, batch)
        if key is not None:
            self._remember(key)

    def _label(self, mod: nn.Module) -> str:
        return f"{self.path or 'model'} ({type(mod).__name__}).forward()"

    def _check(self, mod: nn.Module, x: Any, hx: Any, batch: tuple[int, str, tuple[int, ...]] | None) -> None:
        """Check one call; under ``batch_axis`` against the model input's batch, refusing another batch only
        where it proves a transposition (see ``_swapped``): a layer may run on another batch on purpose."""
        if batch is None or batch[0] < 0:
            self._check_call(mod, x, hx, None)
            return
        try:
            self._check_call(mod, x, hx, batch)
            return
        except ShapeError as e:
            declared = e
        # the layer's own arguments first: where they disagree among themselves, that error names the culprit
        self._check_call(mod, x, hx, None)
        if self._swapped(mod, x, hx, batch):
            raise declared
        # another batch than the model's input, consistent in itself and not a swap of batch and time: a decoder
        # whose batch shrinks as sequences end (h[:batch_t]), empty sequences dropped before packing, words
        # folded into the batch. torch runs it correctly, and nothing in the call proves a mistake.

    def _swapped(self, mod: nn.Module, x: Any, hx: Any, batch: tuple[int, str, tuple[int, ...]]) -> bool:
        """Whether a sequence input holds the declared batch on its time axis and one of the model input's
        other sizes (its time) on its batch axis: the signature of a (time, batch) tensor handed to a
        batch-first layer, or the reverse."""
        if self.kind == "mha":
            x = self.mha_args.get("query")
        elif self.kind not in ("rnn", "lstm"):
            return False
        if not isinstance(x, Tensor) or x.dim() != 3 or hx is not None:
            return False  # a state that agrees with the input's batch axis: the caller built both for it
        b_ax, t_ax = (0, 1) if getattr(mod, "batch_first", False) else (1, 0)
        declared, other = batch[0], batch[2]
        if declared < 2:  # a batch of 1 on the time axis is any one-step call (a decoder step, a sample)
            return False
        return (
            int(x.shape[t_ax]) == declared and int(x.shape[b_ax]) != declared and int(x.shape[b_ax]) in other
        )

    def _check_call(
        self, mod: nn.Module, x: Any, hx: Any, batch: tuple[int, str, tuple[int, ...]] | None
    ) -> None:
        ctx = module_context("forward", mod)
        ctx.label = self._label(mod)
        if batch is not None and batch[0] >= 0 and "batch" not in ctx.memo:
            ctx.memo["batch"] = batch[0]
            ctx.org["batch"] = (batch[1], "", -1, False, ())
        kind = self.kind
        if kind == "embedding":
            if ctx.weight is not None and ctx.weight.is_meta:
                ctx.weight = None  # torch looks up indices on any device in a meta table (shape inference)
            _check_args(ctx, [(_INDICES, "input", x)])
            _check_index_range(ctx.where, mod, x)
            return
        if kind == "linear":
            _check_args(ctx, [(_LINEAR_INPUT, "input", x)])
            return
        if kind == "mha":
            mha = typing.cast(nn.MultiheadAttention, mod)
            for name, size in (("embed", mha.embed_dim), ("heads", mha.num_heads)):
                ctx.memo[name] = size
                ctx.org[name] = ("self", "", -1, False, ())
            batched = not (isinstance(x, Tensor) and x.dim() == 2)
            ctx.call_args = self.mha_args  # the hints read the whole call (is it batched, which layout fits)
            values = self.mha_args
            specs = _mha_specs(mha, batched)
            # query, key and value: the weights' device and dtype (any floating dtype under autocast)
            w = _weight(mha)
            ctx.weight, ctx.weight_origin, ctx.autocast = w, "self.in_proj_weight", _autocast(w)
            if mha.in_proj_weight is None:
                ctx.weight_origin = "self.q_proj_weight"
            _check_args(ctx, [(spec, name, values.get(name)) for name, spec in specs[:3]])
            # the masks: bool or floating, not the weights' dtype (which floating dtypes torch takes depends on
            # the path it runs: need_weights, is_causal, the other mask; not checked, see the shapes page)
            ctx.weight = None
            _check_args(ctx, [(spec, name, values.get(name)) for name, spec in specs[3:]])
            return
        unbatched_ndim = 2 if kind in ("rnn", "lstm") else 1
        if isinstance(x, Tensor) and x.dim() == unbatched_ndim and self.allow_unbatched:
            kind += "-unbatched"  # one unbatched sequence (or step), as torch reads it: checked as such
        w = ctx.weight
        input_spec, state_spec = (_SPECS_COMPLEX if w is not None and w.is_complex() else _SPECS)[kind]
        _check_args(ctx, [(input_spec, "input", x), (state_spec, "hx", hx)])


def _weight(mod: nn.Module) -> Tensor | None:
    params, attrs = mod._parameters, mod.__dict__  # a DataParallel replica holds its weights as attributes
    for name in ("weight", "weight_ih", "weight_ih_l0", "in_proj_weight", "q_proj_weight"):
        w = params.get(name)
        if w is None:
            w = attrs.get(name)
        if w is not None:
            return typing.cast(Tensor, w)
    return None


_is_compiling = torch.compiler.is_compiling
_any_autocast = torch._C._is_any_autocast_enabled  # one C call; the per-device state is read on a full check


def _autocast(w: Tensor | None) -> bool:
    """Whether autocast is on for the weights' device: torch then casts inputs per op, so dtypes may differ."""
    return w is not None and autocast_enabled(w.device)


def _check_args(ctx: Context, pairs: list[tuple[_Spec, str, Any]]) -> None:
    for spec, name, value in pairs:
        check_value(spec, value, name, ctx)
        check_devices(ctx, name, value)


class _Enter(_Hook):
    """The guarded model's pre-hook under ``batch_axis``: bind the batch from its first tensor input."""

    def __init__(self, scope: _Scope) -> None:
        self.scope = scope

    def __call__(self, mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if torch.jit.is_tracing():  # sizes are traced values under torch.jit.trace: read without its warning
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                self._enter(args, kwargs)
            return
        self._enter(args, kwargs)

    def _enter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        axis = self.scope.axis
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, (Tensor, PackedSequence))), None)
        if isinstance(first, PackedSequence):
            batch, time = int(first.batch_sizes[0]), len(first.batch_sizes)
            self.scope.stack.append((batch, "the model's input (packed batch)", (time,)))
        elif isinstance(first, Tensor) and axis is not None and first.dim() > axis:
            other = tuple(int(n) for i, n in enumerate(first.shape) if i != axis)
            self.scope.stack.append(
                (int(first.shape[axis]), f"the model's input axis {axis} (batch_axis)", other)
            )
        else:
            self.scope.stack.append((-1, "", ()))  # nothing to bind; keeps enter/leave paired


class _Leave(_Hook):
    def __init__(self, scope: _Scope) -> None:
        self.scope = scope

    def __call__(self, mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        if self.scope.stack:
            self.scope.stack.pop()


def guard(
    model: nn.Module,
    *,
    batch_axis: int | None = None,
    allow_unbatched: bool = True,
) -> GuardHandle:
    """Check every recurrent layer, cell, embedding and linear layer inside ``model`` at each call.

    Args:
        model: any ``nn.Module``; its code is not changed (forward pre-hooks are added).
        batch_axis: the axis of the model's first tensor input that holds the batch, if the model has such
            an interface (``0`` for ``(batch, time, ...)``, ``1`` for ``(time, batch, ...)``). Declared, it
            gives ``batch`` to every layer of the call, which catches a transposition inside the model that
            torch runs silently (a layer holding that batch on its time axis); a layer run on another batch
            on purpose passes. ``None`` (the default): each layer is checked against its own arguments
            only, and nothing is assumed about the model's interface.
        allow_unbatched: accept what torch reads as one unbatched sequence: a 2-D ``(time, input)`` input to
            a recurrent layer (state ``(layers*dirs, hidden)``), a 1-D ``(input,)`` step to a cell. Such calls
            are still checked in full. ``False`` refuses them (when unbatched input is always a mistake in
            your model).

    Returns:
        A ``GuardHandle``; ``handle.remove()`` (or leaving ``with guard(model):``) removes the checks.

    Raises (at the call of a guarded layer):
        ShapeError: the same messages as ``shapecheck``, naming the layer by its path in the model.
    """
    if batch_axis is not None and (isinstance(batch_axis, bool) or not isinstance(batch_axis, int)):
        raise TypeError(
            f"guard(batch_axis=...) takes the axis of the model's input that holds the batch (0 or 1) or None; "
            f"got {batch_axis!r}"
        )
    handle = GuardHandle()
    scope = _Scope(batch_axis)
    for path, module in model.named_modules():
        for cls, forward, kind in _KINDS:
            if isinstance(module, cls):
                if type(module).forward is not forward:
                    handle.skipped[path or "model"] = (
                        f"{type(module).__name__} redefines forward: its arguments are not {cls.__name__}'s"
                    )
                    break
                hook = _LayerCheck(path, kind, scope, allow_unbatched)
                registered = module.register_forward_pre_hook(hook, with_kwargs=True)
                hook.hook_id = registered.id
                handle._handles.append(registered)
                handle._layers.append(weakref.ref(module))
                handle.modules.append(path or "model")
                break
        else:
            kind_of = type(module)
            if (
                kind_of.__module__.startswith(("torch.ao.", "torch.nn.quantized"))
                and kind_of.__name__ in _NAMES
            ):
                handle.skipped[path or "model"] = (
                    f"a quantized {kind_of.__name__} ({kind_of.__module__}): its weights are packed, not checked"
                )
    if batch_axis is not None and not any(isinstance(model, cls) for cls, _, _ in _KINDS):
        handle._handles.insert(0, model.register_forward_pre_hook(_Enter(scope), with_kwargs=True))
        handle._handles.append(model.register_forward_hook(_Leave(scope), with_kwargs=True, always_call=True))
    return handle


def _check_index_range(where: str, mod: nn.Module, x: Tensor) -> None:
    """On the CPU (where it costs no device sync), indices must be < vocab rows: torch's own IndexError is mute.

    Only for plain tensors: under ``vmap``, fake or functional tensors the values cannot be read."""
    if torch.jit.is_tracing() or x.device.type != "cpu" or x.numel() == 0 or type(x) is not Tensor:
        return  # (torch.jit.trace would warn that reading values makes its trace depend on them)
    if torch._C._functorch.is_functorch_wrapped_tensor(x):
        return
    weight = mod._parameters.get("weight")
    rows = int(weight.shape[0]) if weight is not None else typing.cast(nn.Embedding, mod).num_embeddings
    lo, hi = (int(v) for v in torch.aminmax(x))
    if lo < 0 or hi >= rows:
        raise ShapeError(
            f"{where}: argument 'input' holds indices outside the embedding.\n"
            f"  expected: indices in 0..{rows - 1} (vocab={rows})\n"
            f"  actual:   min {lo}, max {hi}\n"
            f"  hint:     [index-range] an nn.Embedding(vocab={rows}, ...) has one row per symbol: encode with the "
            "same vocabulary the model was built with, or build it with more rows."
        )


def _call(check: Any, mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    check(mod, args, kwargs)


_EAGER: Any = None  # _call behind torch.compiler.disable, made at the first compiled call (it imports dynamo)


def _run_eagerly(check: Any, mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    global _EAGER
    if _EAGER is None:
        _EAGER = torch.compiler.disable(_call)
    _EAGER(check, mod, args, kwargs)
