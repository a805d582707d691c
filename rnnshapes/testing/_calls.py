"""How every check calls a model and picks the tensor it looks at (shared machinery, private).

The uniform convention of ``rnnshapes.testing``:

* ``inputs``: one object (a tensor, a PackedSequence) is passed as the single positional argument; a tuple or
  list is unpacked into positional arguments: ``x``, ``(x, lengths)``, ``(x, h0)``, ``packed``...
* ``call(model, *inputs)``: how to run the model; default ``model(*inputs)``. Use it to pack inside the call
  (``lambda m, x, lengths: m(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))``) or to
  pass keyword arguments.
* ``output(result)``: which tensor of the result a check looks at; default: the first tensor of the result,
  depth first: ``out`` of ``out``, ``(out, h_n)`` and ``(out, (h, c))``; a PackedSequence there is padded back
  (``pad_packed_sequence``) with batch first when the check's output batch axis is 0, else time first.
"""

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ._errors import CheckFailed

CallFn = Callable[..., Any]
"""``call(model, *inputs) -> result``."""

OutputFn = Callable[[Any], Tensor]
"""``output(result) -> tensor``."""


def as_args(inputs: Any) -> tuple[Any, ...]:
    """The positional arguments that ``inputs`` stands for (a tuple/list is unpacked, anything else is one)."""
    if isinstance(inputs, PackedSequence):  # a PackedSequence is a tuple too: it is ONE argument
        return (inputs,)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs)
    return (inputs,)


def default_call(model: Any, *args: Any) -> Any:
    return model(*args)


def first_tensor(result: Any, *, batch_first: bool = True) -> Tensor:
    """The first tensor of a model's result, depth first (a PackedSequence is padded back)."""
    found = _first_tensor(result, batch_first)
    if found is None:
        raise TypeError(
            f"the model returned {describe(result)}, which holds no tensor; pass output=... to say which "
            "tensor the check should look at"
        )
    return found


def _first_tensor(result: Any, batch_first: bool) -> Tensor | None:
    if isinstance(result, Tensor):
        return result
    if isinstance(result, PackedSequence):
        return pad_packed_sequence(result, batch_first=batch_first)[0]
    if isinstance(result, (tuple, list)):
        for item in result:
            found = _first_tensor(item, batch_first)
            if found is not None:
                return found
    if isinstance(result, Mapping):
        for item in result.values():
            found = _first_tensor(item, batch_first)
            if found is not None:
                return found
    for _, item in dataclass_items(result):
        found = _first_tensor(item, batch_first)
        if found is not None:
            return found
    return None


def dataclass_items(obj: Any) -> list[tuple[str, Any]]:
    """The fields of a dataclass instance (a model's output record), in order; [] for anything else."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        missing = object()  # a field(init=False) never set
        found = [(f.name, getattr(obj, f.name, missing)) for f in dataclasses.fields(obj)]
        return [(name, value) for name, value in found if value is not missing]
    return []


def selector(output: OutputFn | None, *, batch_first: bool = True) -> OutputFn:
    if output is not None:
        return output
    return lambda result: first_tensor(result, batch_first=batch_first)


def output_name(output: OutputFn | None) -> str:
    return "the first tensor of the result" if output is None else "output(result)"


def tensor_leaves(result: Any, path: str = "result") -> list[tuple[str, Tensor]]:
    """Every tensor in a result with a readable path: ``result[0]``, ``result[1][1]``, ``result.data``..."""
    if isinstance(result, Tensor):
        return [(path, result)]
    if isinstance(result, PackedSequence):
        return [(f"{path}.data", result.data)]
    if isinstance(result, (tuple, list)):
        return [leaf for i, item in enumerate(result) for leaf in tensor_leaves(item, f"{path}[{i}]")]
    if isinstance(result, Mapping):
        return [leaf for k, item in result.items() for leaf in tensor_leaves(item, f"{path}[{k!r}]")]
    return [leaf for k, item in dataclass_items(result) for leaf in tensor_leaves(item, f"{path}.{k}")]


def describe(obj: Any) -> str:
    """A short description of a value for messages: ``Tensor(float32, shape (2, 3, 4))``, ``tuple of 2``..."""
    if isinstance(obj, Tensor):
        return f"Tensor({str(obj.dtype).removeprefix('torch.')}, shape {tuple(obj.shape)})"
    if isinstance(obj, PackedSequence):
        return f"PackedSequence(data shape {tuple(obj.data.shape)}, batch_sizes {obj.batch_sizes.tolist()})"
    if isinstance(obj, (tuple, list)):
        inner = ", ".join(describe(item) for item in obj)
        return f"{type(obj).__name__}({inner})"
    return type(obj).__name__


@contextlib.contextmanager
def mode(module: Any, training: bool) -> Iterator[None]:
    """Put ``module`` (if it is an nn.Module) in train/eval mode, restoring every submodule's flag after."""
    if not isinstance(module, nn.Module):
        yield
        return
    saved = [(m, m.training) for m in module.modules()]
    module.train(training)
    try:
        yield
    finally:
        for m, flag in saved:
            m.training = flag


@contextlib.contextmanager
def gradient_mode(model: Any) -> Iterator[None]:
    """How the gradient checks run a model: eval mode (dropout off), with cuDNN off (cuDNN's RNN backward refuses
    eval mode) and oneDNN off (its CPU LSTM backward has no vmap rule, so the VJPs would run one at a time)."""
    with mode(model, False), torch.backends.cudnn.flags(enabled=False), _onednn_off(), torch.enable_grad():
        yield


@contextlib.contextmanager
def _onednn_off() -> Iterator[None]:
    """oneDNN (mkldnn) off for the forward pass, restored after. Set through ``torch.backends.mkldnn.enabled``:
    ``torch.backends.mkldnn.flags()`` also resets its TF32 flag, which warns on every CPU build."""
    before = bool(torch.backends.mkldnn.enabled)
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]  # a ContextProp: assigning sets the flag
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before  # type: ignore[assignment]


def refuse_meta(check: str, model: Any, inputs: Any) -> None:
    """Meta tensors have shapes and no values: a check that compares values cannot run on them."""

    def meta(x: Any) -> bool:
        if isinstance(x, Tensor):
            return x.is_meta
        if isinstance(x, PackedSequence):
            return x.data.is_meta
        if isinstance(x, Mapping):
            return any(meta(v) for v in x.values())
        if isinstance(x, (tuple, list)):
            return any(meta(v) for v in x)
        return False

    where = ""
    if isinstance(model, nn.Module) and any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        where = "the model's weights are"
    elif meta(inputs):
        where = "the inputs are"
    if where:
        raise ValueError(
            f"{check} compares values, and {where} on the meta device, which holds shapes only: build the model "
            "and inputs on a real device (a model built on meta: model.to_empty(device='cpu'), then initialise "
            "its weights). check_shape_contract runs on meta."
        )


def refuse_lazy(check: str, model: Any) -> None:
    """Lazy modules (nn.LazyLinear) not run yet get random weights at their first call, in each copy a check
    makes: two copies then differ for no fault of the model's."""
    if not isinstance(model, nn.Module):
        return
    from torch.nn.modules.lazy import LazyModuleMixin

    lazy = [
        n or "model"
        for n, m in model.named_modules()
        if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params()  # type: ignore[misc]
    ]
    if lazy:
        raise ValueError(
            f"{check}: {', '.join(lazy)} {'is a lazy module' if len(lazy) == 1 else 'are lazy modules'} not run "
            "yet, whose weights each copy the check makes would draw at random: run the model once on the "
            "inputs before checking it"
        )


@contextlib.contextmanager
def buffers_kept(module: Any) -> Iterator[None]:
    """Restore every buffer of ``module`` afterwards (a BatchNorm's running statistics, moved by a train-mode
    forward of the check's own, are the user's model's state)."""
    if not isinstance(module, nn.Module):
        yield
        return
    saved = [
        (m, name, b, b.detach().clone())
        for m in module.modules()
        for name, b in m._buffers.items()
        if b is not None
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, name, b, value in saved:
                if b.shape == value.shape:
                    b.copy_(value)
                m._buffers[name] = b  # a buffer replaced out of place (self.ema = 0.9 * self.ema + ...) too


def is_float(x: Any) -> bool:
    return isinstance(x, Tensor) and (x.is_floating_point() or x.is_complex())


def lengths_list(lengths: Any) -> list[int]:
    if isinstance(lengths, Tensor):
        return [int(v) for v in lengths.reshape(-1).tolist()]
    return [int(v) for v in lengths]


def index(shape_index: Sequence[int]) -> str:
    return "(" + ", ".join(str(i) for i in shape_index) + ")"


def compare(
    got: Tensor, want: Tensor, *, atol: float, rtol: float, got_name: str, want_name: str, limit: int = 5
) -> str | None:
    """None when ``got`` matches ``want`` within ``atol + rtol * |want|``; else a message saying where and by
    how much (NaNs in the same places count as equal)."""
    if tuple(got.shape) != tuple(want.shape):
        return f"{got_name} has shape {tuple(got.shape)} but {want_name} has shape {tuple(want.shape)}"
    a = got.detach().to("cpu", torch.float64)
    b = want.detach().to("cpu", torch.float64)
    both_nan = torch.isnan(a) & torch.isnan(b)
    diff = (a - b).abs()
    bad = ~both_nan & ~(diff <= atol + rtol * b.abs())  # ~(<=) so a NaN on one side counts as bad
    count = int(bad.sum())
    if count == 0:
        return None
    diff = torch.where(bad, torch.nan_to_num(diff, nan=math.inf), torch.zeros_like(diff))
    order = torch.argsort(diff.reshape(-1), descending=True)[: min(limit, count)]
    lines = [
        f"{count} of {a.numel()} elements differ between {got_name} and {want_name} "
        f"(atol={atol:g}, rtol={rtol:g}); largest |difference| {float(diff.reshape(-1)[order[0]]):.3g}:"
    ]
    for flat in order.tolist():
        where = torch.unravel_index(torch.tensor(flat), a.shape) if a.dim() else ()
        pos = tuple(int(i) for i in where)
        lines.append(
            f"  at index {index(pos)}: {float(a[pos]):.6g} vs {float(b[pos]):.6g} "
            f"(|difference| {float(diff[pos]):.3g})"
        )
    if count > limit:
        lines.append(f"  ... and {count - limit} more")
    return "\n".join(lines)


def fail(title: str, body: str, hint: str | None = None) -> CheckFailed:
    """The failure of a check: the title, the hint right under it (read first, before the evidence), the body."""
    text = f"{title}\nhint: {hint}\n{body}" if hint else f"{title}\n{body}"
    return CheckFailed(text)


def to_device(obj: Any, device: torch.device) -> Any:
    """Move what a model call needs to ``device``: floating tensors, PackedSequences and integer tensors of 2 or
    more dimensions (token indices). 1-D integer tensors (lengths, which ``pack_padded_sequence`` wants on the
    CPU) and everything else stay where they are."""
    if isinstance(obj, PackedSequence):
        return obj.to(device)  # type: ignore[arg-type]
    if isinstance(obj, Tensor):
        if obj.is_floating_point() or obj.is_complex() or obj.dim() >= 2:
            return obj.to(device)  # type: ignore[arg-type]
        return obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_device(item, device) for item in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(item, device) for item in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def weights_like(t: Tensor, seed: int) -> Tensor:
    """Fixed positive random weights in [0.5, 1.5) shaped like ``t`` (made on the CPU, so every device agrees).

    Gradient checks differentiate ``(selected output * weights).sum()``: random weights make an accidental
    cancellation of gradients (and so a missed dependency) practically impossible."""
    g = torch.Generator().manual_seed(seed)
    dtype = t.dtype if t.is_floating_point() else torch.float32
    return (torch.rand(t.shape, generator=g, dtype=torch.float64) + 0.5).to(device=t.device, dtype=dtype)
