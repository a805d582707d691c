"""Gradient probes: batch independence and causality."""

from typing import Any

import torch
from torch import Tensor, nn

from ._calls import (
    CallFn,
    GradProbe,
    OutputFn,
    as_args,
    default_call,
    describe,
    fail,
    mode,
    output_name,
    selector,
    weights_like,
)
from ._errors import VACUOUS_BATCH, VACUOUS_STEP, warn_vacuous


def _influence(
    model: Any,
    inputs: Any,
    *,
    call: CallFn | None,
    output: OutputFn | None,
    wrt: int | nn.Module | None,
    in_axis: int,
    out_axis: int,
    out_batch_first: bool,
    in_batch_first: bool,
    seed: int,
    what: str,
) -> tuple[Tensor, str, Tensor, Tensor]:
    """``influence[i, j] = max |d (weighted output slice i along out_axis) / d (input slice j along in_axis)|``.

    Returns ``(influence, probe name, output, leaf)``. Runs the model in eval mode (dropout off) with cuDNN off
    (cuDNN's RNN backward refuses eval mode)."""
    args = as_args(inputs)
    probe = GradProbe(model, args, wrt, batch_first=in_batch_first)
    select = selector(output, batch_first=out_batch_first)
    with mode(model, False), torch.backends.cudnn.flags(enabled=False), torch.enable_grad():
        result, leaf = probe.run(call or default_call)
        out = select(result)
    if not isinstance(out, Tensor):
        raise TypeError(f"output(result) must return a tensor, got {describe(out)}")
    if not out.requires_grad:
        raise fail(
            f"{what}: {output_name(output)} does not depend on {probe.name} at all (it has no gradient).",
            f"output: {describe(out)}; differentiated with respect to {probe.name}: {describe(leaf)}",
            "the check cannot see anything through a tensor that was detached, computed under torch.no_grad(), "
            "or built from something else than this input; pass wrt=... or output=... to point it at the "
            "right tensors",
        )
    n_in = _axis_size(leaf, in_axis, f"{probe.name} ({describe(leaf)})")
    n_out = _axis_size(out, out_axis, f"{output_name(output)} ({describe(out)})")
    weights = weights_like(out, seed)
    influence = torch.zeros(n_out, n_in, dtype=torch.float64)
    dims = [d for d in range(leaf.dim()) if d != in_axis % leaf.dim()]
    for i in range(n_out):
        target = (out.select(out_axis, i) * weights.select(out_axis, i)).sum()
        (grad,) = torch.autograd.grad(target, leaf, retain_graph=True, allow_unused=True)
        if grad is None:
            continue
        g = grad.detach().abs().to("cpu", torch.float64)
        influence[i] = g.amax(dim=dims) if dims else g
    return influence, probe.name, out, leaf


def _axis_size(t: Tensor, axis: int, name: str) -> int:
    if not -t.dim() <= axis < t.dim():
        raise ValueError(f"axis {axis} does not exist in {name}")
    return int(t.shape[axis])


def _matrix(influence: Tensor, row: str, col: str, limit: int = 8) -> list[str]:
    n, m = influence.shape
    if n > limit or m > limit:
        return []
    lines = [f"  max |grad| ({row} = output slice, {col} = input slice):"]
    lines.append((" " * 8 + "".join(f"{col}={j}".ljust(9) for j in range(m))).rstrip())
    for i in range(n):
        cells = "".join(f"{float(influence[i, j]):.2g}".ljust(9) for j in range(m))
        lines.append((f"  {row}={i}".ljust(8) + cells).rstrip())
    return lines


def check_batch_independence(
    model: Any,
    inputs: Any,
    *,
    call: CallFn | None = None,
    output: OutputFn | None = None,
    wrt: int | nn.Module | None = None,
    batch_axis: int = 0,
    output_batch_axis: int | None = None,
    atol: float = 0.0,
    seed: int = 0,
) -> Tensor:
    """Check that each example's output depends on its own input only, for EVERY example.

    For every example i it back-propagates (a randomly weighted sum of) example i's output and requires the
    gradient with respect to every OTHER example's input to be exactly zero. Checking example 0 only misses
    the classic bug: ``out.view(batch, time, -1)`` applied to a time-first ``time batch hidden`` tensor (instead
    of ``out.transpose(0, 1)``) mixes examples for every row but the first.

    The model runs in eval mode (dropout off, restored after) with cuDNN off. BatchNorm in training mode mixes
    the batch by design, so eval mode is what a fair check needs.

    Args:
        model: the model (any callable; an ``nn.Module`` is switched to eval mode for the check).
        inputs: one input or a tuple of positional inputs (e.g. ``x`` or ``(x, lengths)``).
        call: ``call(model, *inputs) -> result``; default ``model(*inputs)``.
        output: ``output(result) -> tensor``; default the first tensor of the result.
        wrt: where gradients are taken: default the first floating-point input (a PackedSequence is padded
            back and re-packed), or, when all inputs are integer indices, the output of the model's first
            ``nn.Embedding`` (captured with a forward hook; its axes are the index tensor's plus ``embed``).
            An int picks an input by position; a module picks that module's output (it must run exactly once).
        batch_axis: the batch axis of that input (0 for batch_first, 1 for time-first sequences).
        output_batch_axis: the batch axis of the output; default ``batch_axis``. Use 1 for a hidden state
            ``layers*dirs batch hidden``.
        atol: the largest |gradient| tolerated between different examples (default 0: exactly zero).
        seed: seed of the random output weights.

    Returns:
        The ``batch x batch`` matrix of max |d output_i / d input_j| (rows: output example i).

    Raises:
        CheckFailed: naming every offending pair ``(i <- j)`` with its max |grad|.
    """
    __tracebackhide__ = True
    out_axis = batch_axis if output_batch_axis is None else output_batch_axis
    influence, probe, out, leaf = _influence(
        model,
        inputs,
        call=call,
        output=output,
        wrt=wrt,
        in_axis=batch_axis,
        out_axis=out_axis,
        out_batch_first=out_axis == 0,
        in_batch_first=batch_axis == 0,
        seed=seed,
        what="batch independence",
    )
    n_out, n_in = influence.shape
    if n_out != n_in:
        raise fail(
            "batch independence: the output's batch axis and the input's batch axis have different sizes.",
            f"{output_name(output)} {describe(out)} has {n_out} along axis {out_axis}; {probe} {describe(leaf)} "
            f"has batch {n_in} along axis {batch_axis}",
            "set batch_axis / output_batch_axis to the batch axes (time-first tensors have batch at axis 1, a "
            "hidden state layers*dirs batch hidden too); an output flattened to (batch*time, ...) needs "
            "output=lambda r: r.view(batch, time, -1) or similar",
        )
    if n_in == 1:
        warn_vacuous(VACUOUS_BATCH)
    off = [(i, j) for i in range(n_out) for j in range(n_in) if i != j and float(influence[i, j]) > atol]
    if off:
        worst = max(off, key=lambda p: float(influence[p]))
        pairs = ", ".join(f"({i}<-{j}) {float(influence[i, j]):.2g}" for i, j in off[:12])
        if len(off) > 12:
            pairs += f", ... ({len(off) - 12} more)"
        clean = [
            i for i in range(n_out) if all(float(influence[i, j]) <= atol for j in range(n_in) if j != i)
        ]
        body = [
            f"gradient of {output_name(output)} (batch axis {out_axis}) for example i with respect to "
            f"{probe} (batch axis {batch_axis}) of example j != i must be zero.",
            f"{len(off)} of {n_out * (n_out - 1)} pairs (i <- j) are not; largest max|grad| "
            f"{float(influence[worst]):.3g} at (i={worst[0]} <- j={worst[1]}).",
            f"pairs (i <- j) max|grad|: {pairs}",
        ]
        if clean:
            body.append(f"examples whose output is clean: {clean} (a check of example 0 alone can pass)")
        body += _matrix(influence, "i", "j")
        raise fail(
            "batch independence failed: an example's output depends on OTHER examples' inputs.",
            "\n".join(body),
            "the classic cause is reshaping a time-first (time batch hidden) tensor with "
            ".view(batch, time, -1) / .reshape(...) instead of .transpose(0, 1) (or a batch_first mismatch "
            "between the RNN and its input); also mean/normalisation over the batch axis, or BatchNorm in "
            "training mode",
        )
    if all(float(influence[i, i]) <= atol for i in range(n_out)):
        raise fail(
            "batch independence: no example's output depends on its own input, so the check saw nothing.",
            f"max|grad| of {output_name(output)} with respect to {probe} is <= {atol:g} everywhere",
            "pass wrt=... / output=... so the check differentiates the tensors that matter",
        )
    return influence


def check_causal(
    model: Any,
    inputs: Any,
    *,
    time_axis: int = 1,
    output_time_axis: int | None = None,
    call: CallFn | None = None,
    output: OutputFn | None = None,
    wrt: int | nn.Module | None = None,
    atol: float = 0.0,
    seed: int = 0,
) -> Tensor:
    """Check that the output at step t does not depend on inputs after t, for every t (unidirectional models).

    For every output step t it back-propagates (a randomly weighted sum of) the output at t and requires the
    gradient with respect to the input at every later step t' > t to be exactly zero. A bidirectional RNN, a
    sequence flipped the wrong way, or attention without a causal mask fails.

    The model runs in eval mode with cuDNN off (restored after).

    Args:
        model: the model.
        inputs: one input or a tuple of positional inputs.
        time_axis: the time axis of the differentiated input (1 for batch_first, 0 for time-first sequences).
        output_time_axis: the time axis of the output; default ``time_axis``.
        call, output, wrt, atol, seed: as in :func:`check_batch_independence` (an index input is probed at the
            output of the model's first ``nn.Embedding``).

    Returns:
        The ``time x time`` matrix of max |d output_t / d input_t'| (rows: output step t).

    Raises:
        CheckFailed: naming every offending pair ``(t <- t')`` with its max |grad|.
    """
    __tracebackhide__ = True
    out_axis = time_axis if output_time_axis is None else output_time_axis
    influence, probe, out, leaf = _influence(
        model,
        inputs,
        call=call,
        output=output,
        wrt=wrt,
        in_axis=time_axis,
        out_axis=out_axis,
        out_batch_first=out_axis != 0,
        in_batch_first=time_axis != 0,
        seed=seed,
        what="causality",
    )
    n_out, n_in = influence.shape
    if n_out != n_in:
        raise fail(
            "causality: the output's time axis and the input's time axis have different sizes.",
            f"{output_name(output)} {describe(out)} has {n_out} along axis {out_axis}; {probe} {describe(leaf)} "
            f"has {n_in} along axis {time_axis}",
            "set time_axis / output_time_axis (batch_first sequences have time at axis 1, time-first at 0); "
            "the check needs a per-step output",
        )
    if n_in == 1:
        warn_vacuous(VACUOUS_STEP)
    future = [(t, s) for t in range(n_out) for s in range(t + 1, n_in) if float(influence[t, s]) > atol]
    if future:
        worst = max(future, key=lambda p: float(influence[p]))
        pairs = ", ".join(f"({t}<-{s}) {float(influence[t, s]):.2g}" for t, s in future[:12])
        if len(future) > 12:
            pairs += f", ... ({len(future) - 12} more)"
        earliest = min(t for t, _ in future)
        body = [
            f"gradient of {output_name(output)} at step t (time axis {out_axis}) with respect to {probe} at a "
            f"later step t' > t (time axis {time_axis}) must be zero.",
            f"{len(future)} of {n_out * (n_out - 1) // 2} pairs (t <- t') are not, the first at output step "
            f"{earliest}; largest max|grad| {float(influence[worst]):.3g} at (t={worst[0]} <- t'={worst[1]}).",
            f"pairs (t <- t') max|grad|: {pairs}",
        ]
        body += _matrix(influence, "t", "t'")
        raise fail(
            "causality failed: the output at step t depends on inputs from the future (steps after t).",
            "\n".join(body),
            "a bidirectional RNN (bidirectional=True) reads the sequence backwards too: check_causal is for "
            "unidirectional models; otherwise look for a flip/reverse of the time axis, a time-first/batch-first "
            "mix-up, or attention/convolution without a causal mask",
        )
    if all(float(influence[t, s]) <= atol for t in range(n_out) for s in range(min(t + 1, n_in))):
        raise fail(
            "causality: no output step depends on its own or earlier inputs, so the check saw nothing.",
            f"max|grad| of {output_name(output)} with respect to {probe} is <= {atol:g} for all t' <= t",
            "pass time_axis / output_time_axis / wrt=... so the check differentiates the tensors that matter",
        )
    return influence
