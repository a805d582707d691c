"""`guard(model)`: the same checks on any existing model, without editing its code (forward pre-hooks).

Every ``nn.RNN/GRU/LSTM``, ``nn.RNNCell/GRUCell/LSTMCell``, ``nn.Embedding`` and ``nn.Linear`` inside the
model is checked when called. The model's own input binds ``batch`` for the whole call (axis 0 when the
model's recurrent layers are batch_first, axis 1 otherwise), which is how guard catches what torch lets
through silently: a ``(time, batch, input)`` tensor handed to a batch_first RNN without ``h0`` runs in torch,
but its axis 0 then disagrees with the batch the model was called with.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils.hooks import RemovableHandle

from ._bind import module_context
from ._checks import check_devices, check_value
from ._errors import ShapeError
from ._specs import Context, Hidden, LSTMState, Packed, _Spec, parse_annotation
from ._switch import _State


def _spec(ann: Any) -> _Spec:
    spec = parse_annotation(ann)
    assert spec is not None
    return spec


_SEQ_INPUT = _spec(Float[Tensor, "*seq input"] | Packed[PackedSequence, "input"])
_UNBATCHED_INPUT = _spec(
    Float[Tensor, "time input"] | Float[Tensor, "*seq input"] | Packed[PackedSequence, "input"]
)
_HIDDEN = _spec(Hidden | None)
_LSTM_STATE = _spec(LSTMState | None)
_CELL_INPUT = _spec(Float[Tensor, "batch input"])
_CELL_HIDDEN = _spec(Float[Tensor, "batch hidden"] | None)
_LSTM_CELL_STATE = _spec(tuple[Float[Tensor, "batch hidden"], Float[Tensor, "batch hidden"]] | None)
_INDICES = _spec(Int[Tensor, "..."])
_LINEAR_INPUT = _spec(Float[Tensor, "... input"])


@dataclass
class _Outer:
    """The batch size bound by the guarded model's own input, for the length of one call."""

    batch: int
    origin: str


@dataclass
class GuardHandle:
    """What ``guard`` returns: the checked module paths, and ``remove()`` to take every check away again.

    Also a context manager: ``with guard(model): ...`` removes the checks on leaving the block.
    """

    modules: list[str] = field(default_factory=list)
    _handles: list[RemovableHandle] = field(default_factory=list, repr=False)

    def remove(self) -> None:
        """Remove every hook that ``guard`` installed (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> "GuardHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _label(path: str, module: nn.Module) -> str:
    return f"{path or 'model'} ({type(module).__name__}).forward()"


def _context(path: str, module: nn.Module, stack: list[_Outer]) -> Context:
    ctx = module_context("forward", module)
    ctx.label = _label(path, module)
    if stack and stack[-1].batch >= 0 and "batch" not in ctx.memo:
        outer = stack[-1]
        ctx.memo["batch"] = outer.batch
        ctx.org["batch"] = (outer.origin, "", -1, False, ())
    return ctx


def _check_args(ctx: Context, pairs: list[tuple[_Spec, str, Any]]) -> None:
    for spec, name, value in pairs:
        check_value(spec, value, name, ctx)
        check_devices(ctx, name, value)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def guard(
    model: nn.Module,
    *,
    batch_axis: int | None | Literal["auto"] = "auto",
    allow_unbatched: bool = False,
) -> GuardHandle:
    """Check every recurrent layer, cell, embedding and linear layer inside ``model`` at each call.

    Args:
        model: any ``nn.Module``; its code is not changed (forward pre-hooks are added).
        batch_axis: the axis of the model's first tensor input that holds the batch. ``"auto"``: 0 if the
            model's recurrent layers are batch_first, else 1. ``None``: do not bind the batch from the model's
            input (each layer is then checked on its own).
        allow_unbatched: accept 2-D ``(time, input)`` inputs to recurrent layers, which torch reads as one
            unbatched sequence (off by default: it is usually a forgotten batch axis).

    Returns:
        A ``GuardHandle``; ``handle.remove()`` (or leaving ``with guard(model):``) removes the checks.

    Raises (at the call of a guarded layer):
        ShapeError: the same messages as ``shapecheck``, naming the layer by its path in the model.
    """
    handle = GuardHandle()
    stack: list[_Outer] = []
    rnns = [m for m in model.modules() if isinstance(m, nn.RNNBase)]
    if batch_axis == "auto":
        batch_axis = (0 if rnns[0].batch_first else 1) if rnns else None

    for path, module in model.named_modules():
        hook: Callable[..., None] | None = None
        if isinstance(module, nn.RNNBase):
            state = _LSTM_STATE if isinstance(module, nn.LSTM) else _HIDDEN
            hook = _recurrent_hook(path, _SEQ_INPUT, state, stack, allow_unbatched)
        elif isinstance(module, nn.RNNCellBase):
            state = _LSTM_CELL_STATE if isinstance(module, nn.LSTMCell) else _CELL_HIDDEN
            hook = _recurrent_hook(path, _CELL_INPUT, state, stack, allow_unbatched=False)
        elif isinstance(module, nn.Embedding):

            def hook(
                mod: nn.Embedding, args: tuple[Any, ...], kwargs: dict[str, Any], _p: str = path
            ) -> None:
                if not _State.enabled:
                    return
                x = _arg(args, kwargs, 0, "input")
                ctx = _context(_p, mod, stack)
                _check_args(ctx, [(_INDICES, "input", x)])
                _check_index_range(ctx, x, mod.num_embeddings)

        elif isinstance(module, nn.Linear):

            def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], _p: str = path) -> None:
                if not _State.enabled:
                    return
                ctx = _context(_p, mod, stack)
                _check_args(ctx, [(_LINEAR_INPUT, "input", _arg(args, kwargs, 0, "input"))])

        if hook is not None:
            handle._handles.append(
                module.register_forward_pre_hook(torch.compiler.disable(hook), with_kwargs=True)
            )
            handle.modules.append(path or "model")

    if batch_axis is not None and not isinstance(model, (nn.RNNBase, nn.RNNCellBase)):
        axis = batch_axis

        def enter(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            first = next(
                (a for a in (*args, *kwargs.values()) if isinstance(a, (Tensor, PackedSequence))), None
            )
            if isinstance(first, PackedSequence):
                stack.append(_Outer(int(first.batch_sizes[0]), "the model's input (packed batch)"))
            elif isinstance(first, Tensor) and first.dim() > axis:
                stack.append(_Outer(int(first.shape[axis]), f"the model's input axis {axis}"))
            else:
                stack.append(_Outer(-1, ""))  # nothing to bind; keeps enter/leave paired

        def leave(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            if stack:
                stack.pop()

        handle._handles.insert(
            0, model.register_forward_pre_hook(torch.compiler.disable(enter), with_kwargs=True)
        )
        handle._handles.append(
            model.register_forward_hook(torch.compiler.disable(leave), with_kwargs=True, always_call=True)
        )
    return handle


def _recurrent_hook(
    path: str, input_spec: _Spec, state_spec: _Spec, stack: list[_Outer], allow_unbatched: bool
) -> Callable[..., None]:
    """The pre-hook of a recurrent layer or cell: ``(input, hx)`` against the layer's own sizes."""

    def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not _State.enabled:
            return
        x, hx = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "hx")
        if allow_unbatched and isinstance(x, Tensor) and x.dim() == 2:
            return  # one unbatched (time, input) sequence, as torch reads it
        _check_args(_context(path, mod, stack), [(input_spec, "input", x), (state_spec, "hx", hx)])

    return hook


def _check_index_range(ctx: Context, x: Tensor, rows: int) -> None:
    """On the CPU (where it costs no device sync), indices must be < vocab rows: torch's own IndexError is mute."""
    if x.device.type != "cpu" or x.numel() == 0:
        return
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= rows:
        raise ShapeError(
            f"{ctx.where}: argument 'input' holds indices outside the embedding.\n"
            f"  expected: indices in 0..{rows - 1} (vocab={rows})\n"
            f"  actual:   min {lo}, max {hi}\n"
            f"  hint:     [index-range] an nn.Embedding(vocab={rows}, ...) has one row per symbol: encode with the "
            "same vocabulary the model was built with, or build it with more rows."
        )
