"""State checks: a state_dict round trip, and CPU/CUDA parity."""

import copy
import io
import math
import os
import pickle
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..core._precision import tf32_disabled as tf32_disabled
from ._calls import (
    CallFn,
    OutputFn,
    as_args,
    compare,
    default_call,
    describe,
    fail,
    is_float,
    mode,
    refuse_lazy,
    refuse_meta,
    tensor_leaves,
    to_device,
    weights_like,
)
from ._compact import ELEMENTS, Problem, largest_difference, worst
from ._errors import DeviceUnavailable, warn_vacuous


def _leaves(result: Any, output: OutputFn | None) -> list[tuple[str, Tensor]]:
    if output is not None:
        return [("output(result)", output(result))]
    leaves = tensor_leaves(result)
    if not leaves:
        raise TypeError(f"the model returned {describe(result)}, which holds no tensor; pass output=...")
    return leaves


def check_state_dict_roundtrip(
    model: nn.Module,
    make_model: Callable[[], nn.Module],
    inputs: Any,
    *,
    call: CallFn | None = None,
    output: OutputFn | None = None,
    atol: float = 0.0,
    rtol: float = 0.0,
) -> None:
    """Check that saving ``model.state_dict()`` and loading it into a fresh model gives the same outputs.

    Saves with ``torch.save`` to memory, loads with ``torch.load(weights_only=True)`` (as any checkpoint should
    be loaded: it never unpickles arbitrary objects), ``load_state_dict`` (strict) into ``make_model()``, and
    compares every tensor of the result (or ``output(result)``) in eval mode. Catches state kept outside the
    state_dict: a tensor stored as a plain attribute instead of an ``nn.Parameter`` / buffer, submodules in a
    Python list instead of ``nn.ModuleList``, a buffer registered with ``persistent=False``.

    Warns when the fresh model already gives the same outputs before loading (``make_model`` seeded the same
    way?): then the check proves little.

    Args:
        model: the trained (or at least initialised) model.
        make_model: builds a fresh model of the same configuration (on the same device).
        inputs: one input or a tuple of positional inputs.
        call, output: as everywhere in ``rnnshapes.testing``.
        atol, rtol: tolerance (default exact: a round trip must not change a bit).

    Raises:
        CheckFailed: when the state_dict cannot be saved/loaded, or outputs differ (where, by how much).
    """
    refuse_meta("check_state_dict_roundtrip", model, inputs)
    refuse_lazy("check_state_dict_roundtrip", model)
    __tracebackhide__ = True
    args = as_args(inputs)
    run = call or default_call
    pristine = copy.deepcopy(model)  # as it is before the check runs it: to tell state kept from randomness
    state = model.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        loaded = torch.load(buffer, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as e:
        raise fail(
            "state_dict round trip: torch.load(weights_only=True) refuses the saved state_dict.",
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            "a state_dict should hold tensors (and plain numbers/strings) only; move other objects out of "
            "get_extra_state() / the state dict",
        ) from None
    fresh = make_model()
    with mode(model, False), mode(fresh, False), torch.no_grad():
        want = _leaves(run(model, *args), output)
        before = _leaves(run(fresh, *args), output)
        try:
            fresh.load_state_dict(loaded)
        except RuntimeError as e:
            raise fail(
                "state_dict round trip: the saved state_dict does not load into make_model().",
                str(e).strip(),
                "make_model() must build the same configuration (sizes, layers, bidirectional...) as the model",
            ) from None
        got = _leaves(run(fresh, *args), output)
    if len(got) == len(want) and all(
        tuple(b.shape) == tuple(w.shape) and torch.equal(b.cpu(), w.cpu())
        for (_, b), (_, w) in zip(before, want, strict=False)
    ):
        warn_vacuous(
            "check_state_dict_roundtrip: make_model() built a model whose outputs already equal the original's "
            "before loading (same seed, or an input-independent model?); the round trip proves little"
        )
    problems: list[Problem] = []
    if len(got) != len(want):
        problems.append(
            Problem(f"the result has {len(got)} tensors after loading but {len(want)} before", "", 0)
        )
    for (name, g), (_, w) in zip(got, want, strict=False):
        diff = compare(
            g,
            w,
            atol=atol,
            rtol=rtol,
            got_name="the loaded model's",
            want_name="the original's",
            limit=ELEMENTS,
        )
        if diff:
            problems.append(Problem(f"{name}:", diff, largest_difference(g, w), name))
    if problems:
        _refuse_random("check_state_dict_roundtrip", pristine, args, run, output, want, atol, rtol)
        keys = sorted(state)
        culprits = state_outside(model)
        found = [f"  {c}" for c in culprits[:8]] + (
            [f"  ... and {len(culprits) - 8} more"] if len(culprits) > 8 else []
        )
        outside = ["state the state_dict does not hold:", *found] if culprits else []
        raise fail(
            "state_dict round trip failed: the reloaded model gives different outputs.",
            "\n".join([*outside, *worst(problems, noun="more tensors")])
            + f"\nstate_dict keys saved ({len(keys)}): {keys[:8]}{' ...' if len(keys) > 8 else ''}",
            _roundtrip_hint(culprits),
        )


def _roundtrip_hint(culprits: list[str]) -> str:
    if culprits:
        names = ", ".join(c.split(":")[0] for c in culprits[:3]) + (" ..." if len(culprits) > 3 else "")
        return (
            f"the state_dict does not hold {names}, so the loaded model keeps make_model()'s own values there: "
            "make a tensor an nn.Parameter or a buffer (self.register_buffer(name, tensor)), put modules in "
            "nn.ModuleList / nn.ModuleDict; a buffer registered with persistent=False is left out on purpose"
        )
    return (
        "state outside the state_dict is lost on save: a tensor kept as a plain attribute (make it an "
        "nn.Parameter or register_buffer(...)), submodules in a Python list/dict (use nn.ModuleList / "
        "nn.ModuleDict), a buffer registered with persistent=False, or state set outside __init__ (a "
        "vocabulary, a config read in forward)"
    )


def state_outside(model: nn.Module) -> list[str]:
    """The state of ``model`` that its state_dict does not hold, as ``self.<path>`` lines: tensors kept as plain
    attributes, modules and tensors in plain lists/tuples/dicts, buffers registered with ``persistent=False``.
    Tensors that are also parameters or buffers (``nn.RNN``'s ``_flat_weights``) are not counted."""
    held = {id(t) for t in model.state_dict(keep_vars=True).values()}
    found: list[str] = []
    for path, module in model.named_modules():
        prefix = f"self.{path}." if path else "self."
        for name in sorted(getattr(module, "_non_persistent_buffers_set", ())):
            buffer = module._buffers.get(name)
            if buffer is not None:
                found.append(f"{prefix}{name}: {describe(buffer)}, a buffer registered with persistent=False")
        for name, value in vars(module).items():
            if name in ("_parameters", "_buffers", "_modules") or name.startswith("__"):
                continue
            what = _unheld(value, held)
            if what:
                found.append(f"{prefix}{name}: {what}")
    return found


def _unheld(value: Any, held: set[int]) -> str | None:
    """How ``value`` (an attribute of a module) holds state that the state_dict does not, or None."""
    if isinstance(value, Tensor):
        return None if id(value) in held else f"{describe(value)}, a plain attribute"
    items: list[Any] = []
    if isinstance(value, (list, tuple)):
        items, kind = list(value), f"a plain {type(value).__name__}"
    elif isinstance(value, Mapping):
        items, kind = list(value.values()), "a plain dict"
    else:
        return None
    modules = [v for v in items if isinstance(v, nn.Module)]
    tensors = [v for v in items if isinstance(v, Tensor) and id(v) not in held]
    if modules:
        names = sorted({type(m).__name__ for m in modules})
        container = "nn.ModuleDict" if isinstance(value, Mapping) else "nn.ModuleList"
        return f"{kind} of {len(modules)} module(s) ({', '.join(names)}), not an {container}"
    if tensors:
        return f"{kind} of {len(tensors)} tensor(s) not registered as parameters or buffers"
    return None


def cuda_unavailable_reason() -> str | None:
    """None when CUDA can be used; else why not (for skip reasons and errors)."""
    if torch.cuda.is_available():
        return None
    built = torch.version.cuda
    why = (
        f"torch {torch.__version__} is a CPU-only build"
        if built is None
        else f"torch {torch.__version__} (CUDA {built}) finds no GPU"
    )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        why += f", CUDA_VISIBLE_DEVICES={visible!r}"
    return f"CUDA not available: torch.cuda.is_available() is False ({why})"


def _refuse_random(
    check: str,
    model: Any,
    args: Any,
    run: Any,
    output: Any,
    want: list[tuple[str, Tensor]],
    atol: float,
    rtol: float,
    again: list[tuple[str, Tensor]] | None = None,
) -> None:
    """Before blaming the state or the device: does a copy of the model as it was give the same result on the
    same input? A model with randomness left on in eval mode (``F.dropout(x, training=True)``, tacotron2's
    prenet) does not, and no comparison of two runs can say anything about it; a model that keeps state from
    call to call does (its copy starts from the same state), and is judged as before."""
    if again is None:
        with mode(model, False), torch.no_grad():
            again = _leaves(run(model, *args), output)
    for (name, a), (_, w) in zip(again, want, strict=False):
        if a.shape == w.shape and compare(
            a.cpu(),
            w.cpu(),
            atol=atol,
            rtol=rtol,
            got_name="the second run's",
            want_name="the first's",
            limit=1,
        ):
            raise ValueError(
                f"{check}: the model gives different results on the same input twice ({name} differs by "
                f"{largest_difference(a.cpu(), w.cpu()):.3g}), so comparing two runs proves nothing. Something "
                "random runs in the mode the check uses (F.dropout(x, training=True), a random op): seed it before each call "
                "in call=, or make it follow self.training"
            )


def _active_dropout(model: nn.Module) -> list[str]:
    found = []
    for name, m in model.named_modules():
        p = getattr(m, "p", None) if isinstance(m, nn.modules.dropout._DropoutNd) else None
        if isinstance(m, nn.RNNBase) and m.num_layers > 1:
            p = m.dropout
        if p:
            found.append(f"{name or 'model'} (p={p:g})")
    return found


def check_device_parity(
    model: nn.Module,
    inputs: Any,
    *,
    device: str | torch.device = "cuda",
    grads: bool = True,
    call: CallFn | None = None,
    output: OutputFn | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    grad_atol: float = 1e-4,
    grad_rtol: float = 1e-3,
    seed: int = 0,
    move: Callable[[Any, torch.device], Any] | None = None,
) -> None:
    """Check that the model gives the same outputs (and gradients) on the CPU and on ``device``.

    Copies the model to the CPU and to ``device`` (the model itself is not moved), runs both on the same
    inputs with TF32 switched off (restored after, even on failure), and compares every tensor of the result,
    then, with ``grads``, the gradients of every parameter and of every float input for a fixed random
    weighting of the outputs.

    With ``grads`` the models run in training mode (cuDNN's RNN backward refuses eval mode), so the model must
    have no active dropout; without ``grads`` they run in eval mode.

    Args:
        model: the model (on any device).
        inputs: one input or a tuple of positional inputs.
        device: the device compared with the CPU (``"cuda"``, ``"cuda:1"``...; ``"cpu"`` compares two CPU runs).
        grads: also compare gradients.
        call, output: as everywhere in ``rnnshapes.testing``.
        atol, rtol: tolerance of the outputs.
        grad_atol, grad_rtol: tolerance of the gradients, looser: a weight's gradient sums over every batch
            element and time step, so rounding grows with them (a GRU of hidden 512 over 40 steps x 16 examples
            showed differences up to 2e-5 on an H200 with TF32 off; with TF32 on, outputs alone differ by 3e-4).
        seed: seed of the random output weighting.
        move: ``move(inputs, device) -> inputs``; default moves float tensors, PackedSequences and integer
            tensors of 2+ dims (indices) and leaves 1-D integer tensors (lengths) on the CPU.

    Raises:
        DeviceUnavailable: when ``device`` is CUDA and CUDA is not available (turn it into a skip).
        ValueError: when ``grads`` and the model has active dropout.
        CheckFailed: naming each differing output / gradient, where and by how much.
    """
    refuse_meta("check_device_parity", model, inputs)
    refuse_lazy("check_device_parity", model)
    __tracebackhide__ = True
    target = torch.device(device)
    if target.type == "cuda":
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise DeviceUnavailable(reason)
    if grads:
        dropout = _active_dropout(model)
        if dropout:
            raise ValueError(
                f"check_device_parity(grads=True) runs in training mode, where dropout is random: {dropout}; "
                "build the model with dropout 0 for this check, or pass grads=False"
            )
    run = call or default_call
    mover = move or to_device
    runs: list[tuple[list[tuple[str, Tensor]], dict[str, Tensor]]] = []
    ran: list[tuple[nn.Module, list[Any]]] = []
    with tf32_disabled():
        for dev in (torch.device("cpu"), target):
            net = copy.deepcopy(model).to(dev)  # (.to re-flattens cuDNN RNN weights)
            args = list(as_args(mover(as_args(inputs), dev)))
            leaves_in = []
            if grads:
                for k, a in enumerate(args):
                    if is_float(a):
                        args[k] = a.detach().clone().requires_grad_(True)
                        leaves_in.append((f"input {k}", args[k]))
            with mode(net, grads), torch.set_grad_enabled(grads):
                outs = _leaves(run(net, *args), output)
                found: dict[str, Tensor] = {}
                if grads:
                    total = sum(
                        (o * weights_like(o, seed + k)).sum()
                        for k, (_, o) in enumerate(outs)
                        if o.requires_grad and o.is_floating_point()
                    )
                    if isinstance(total, Tensor):
                        total.backward()
                    found = {f"grad of {n}": p.grad for n, p in net.named_parameters() if p.grad is not None}
                    found.update({f"grad of {n}": t.grad for n, t in leaves_in if t.grad is not None})
            runs.append(([(n, o.detach().cpu()) for n, o in outs], {k: v.cpu() for k, v in found.items()}))
            ran.append((net, args))
    (cpu_outs, cpu_grads), (dev_outs, dev_grads) = runs
    problems: list[Problem] = []
    for (name, c), (_, d) in zip(cpu_outs, dev_outs, strict=False):
        diff = compare(d, c, atol=atol, rtol=rtol, got_name=f"{target}", want_name="cpu", limit=ELEMENTS)
        if diff:
            problems.append(Problem(f"{name}:", diff, largest_difference(d, c), name))
    for name in sorted(set(cpu_grads) | set(dev_grads)):
        if name not in cpu_grads or name not in dev_grads:
            where = "cpu" if name in cpu_grads else str(target)
            problems.append(Problem(f"{name} exists on {where} only", "", math.inf, name, rank=1))
            continue
        diff = compare(
            dev_grads[name],
            cpu_grads[name],
            atol=grad_atol,
            rtol=grad_rtol,
            got_name=f"{target}",
            want_name="cpu",
            limit=ELEMENTS,
        )
        if diff:
            score = largest_difference(dev_grads[name], cpu_grads[name])
            problems.append(Problem(f"{name}:", diff, score, name, rank=1))
    if problems:
        net, cpu_args = copy.deepcopy(model), ran[0][1]  # the CPU side once more: a copy as the first one was
        with tf32_disabled(), mode(net, grads), torch.set_grad_enabled(grads):
            again = [(n, o.detach().cpu()) for n, o in _leaves(run(net, *cpu_args), output)]
        _refuse_random("check_device_parity", None, None, None, None, cpu_outs, atol, rtol, again)
        raise fail(
            f"device parity failed: cpu and {target} disagree (TF32 off) in {len(problems)} tensors.",
            "\n".join(worst(problems, noun="more tensors")),
            "differences of ~1e-6 are float rounding (raise atol/rtol); larger ones point at device-dependent "
            "code: tensors created without device= (torch.zeros(...) on the CPU), .cuda()/.cpu() calls inside "
            "forward, or non-deterministic kernels",
        )
