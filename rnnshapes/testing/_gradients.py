"""Gradient probes: batch independence and causality."""

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from . import _prefix
from ._calls import (
    CallFn,
    OutputFn,
    as_args,
    default_call,
    describe,
    fail,
    gradient_mode,
    output_name,
    refuse_meta,
    selector,
    tensor_leaves,
    weights_like,
)
from ._errors import VACUOUS_BATCH, VACUOUS_STEP, CheckFailed, warn_vacuous
from ._influence import (
    InfluenceMatrix,
    VJPRows,
    auto_chunk,
    axis_columns,
    every_row,
    finish,
    row_columns,
    saved_bytes_hooks,
    separated_rows,
)
from ._prefix import Prefix, causal_rows, prefix_of
from ._probe import GradProbe
from ._twin import tensor_versions, written


@dataclass
class _Probed:
    out: Tensor
    leaf: Tensor
    name: str
    engine: VJPRows
    n_out: int
    n_in: int
    selected: str = "r"
    """How ``output=`` reaches the tensor the check looked at, for hints: ``r``, ``r[0]``..."""
    packed_leaf: bool = False
    others: tuple[tuple[str, Tensor], ...] = ()
    """The result's other tensors (path, tensor) when ``output=`` was not given, for hints."""
    prefix: Prefix | None = None
    """How to rerun the model on the input's first steps (``check_causal`` only, where the input allows)."""


def _probe(
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
    column: int,
    chunk_size: int | None,
    rerun: bool = False,
) -> _Probed:
    """Run the model once with gradients on; set up the VJPs of the influence matrix
    ``influence[i, j] = max |d (weighted output slice i along out_axis) / d (input slice j along in_axis)|``.

    ``column`` says what an input slice is for a packed token leaf (whose rows have no axes): 0 the example,
    1 the step. Runs the model as ``gradient_mode`` says. ``rerun``: set up ``prefix`` (``check_causal``)."""
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 (or None for the default), got {chunk_size}")
    args = as_args(inputs)
    probe = GradProbe(model, args, wrt, batch_first=in_batch_first)
    select = selector(output, batch_first=out_batch_first)
    saved, hooks = saved_bytes_hooks()
    versions = tensor_versions(model) if rerun and _prefix.RERUN else []  # RERUN off: as before reruns
    with gradient_mode(model), hooks:
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
    if out.numel() == 0 or leaf.numel() == 0:
        empty = (
            f"{output_name(output)} ({describe(out)})"
            if out.numel() == 0
            else f"{probe.name} ({describe(leaf)})"
        )
        raise ValueError(f"{what}: {empty} is empty: nothing to check; pass at least one example of one step")
    caller_axis = in_axis
    in_axis = probe.leaf_axis(in_axis)  # the caller's axis, on a leaf the model may have permuted (ids.t())
    n_out = _axis_size(out, out_axis, f"{output_name(output)} ({describe(out)})")
    if probe.rows is not None:
        col = probe.rows[:, column]
        n_in = int(col.max()) + 1 if len(col) else 0
        columns = row_columns(col, n_in)
    else:
        n_in = _axis_size(leaf, in_axis, f"{probe.name} ({describe(leaf)})")
        columns = axis_columns(in_axis % leaf.dim(), n_in)
    chunk = auto_chunk(sum(saved.values())) if chunk_size is None else chunk_size
    weights = weights_like(out, seed)
    engine = VJPRows(out, leaf, weights, out_axis, columns, chunk)
    prefix = None
    if rerun:

        def again(twin: nn.Module, cut: tuple[Any, ...]) -> tuple[Tensor, Tensor]:  # on the first steps
            fresh = GradProbe(twin, cut, wrt, batch_first=in_batch_first)
            with gradient_mode(twin):
                again_result, again_leaf = fresh.run(default_call)
                return select(again_result), again_leaf

        wrote = "its call writes into its own parameters or buffers" if written(versions) else ""
        refused = "call= may reach beyond the model" if call is not None else wrote
        position = probe.cut_position()
        prefix = prefix_of(model, args, position, caller_axis, in_axis, n_in, weights, again, refused)
    selected = "r"
    if output is None and not isinstance(result, Tensor):
        selected = "r[0]" if isinstance(result, (tuple, list)) and isinstance(result[0], Tensor) else "r[...]"
    others = () if output is not None else tuple((k, t) for k, t in tensor_leaves(result) if t is not out)
    packed = probe.rows is not None
    return _Probed(out, leaf, probe.name, engine, n_out, n_in, selected, packed, others, prefix)


def _axis_hint(p: _Probed, name: str, out_axis: int, tensors_only: bool = False) -> str | None:
    """When another tensor of the result has the input's size on ``out_axis``, the ``output=`` that picks it;
    else (unless ``tensors_only``) when exactly one other axis of the output has it, the argument naming it."""
    for path, t in p.others:  # another tensor of the result has the input's size on that axis
        if -t.dim() <= out_axis < t.dim() and int(t.shape[out_axis]) == p.n_in and p.n_in >= 2:
            pick = "r" + path.removeprefix("result")
            return (
                f"{path} {describe(t)} has the input's size {p.n_in} along axis {out_axis}, the first tensor "
                f"does not: pass output=lambda r: {pick} to check that one"
            )
    fits = [d for d in range(p.out.dim()) if int(p.out.shape[d]) == p.n_in and d != out_axis % p.out.dim()]
    if tensors_only or len(fits) != 1 or p.n_in < 2:
        return None
    return (
        f"axis {fits[0]} of the output has the input's size {p.n_in}: pass {name}={fits[0]} if that is the axis "
        "meant, or output=... to pick another tensor of the result"
    )


def _flattened_hint(p: _Probed, batch_axis: int, time_axis: int, causal: bool) -> str | None:
    """When the output has an axis of batch*time (a model that flattens its logits for the loss, as
    ``decoded.view(-1, ntoken)``), the ``output=`` that restores batch and time, in the order the model's input
    has them (the order a view of the flattened tensor keeps)."""
    leaf = p.leaf
    if p.packed_leaf or leaf.dim() < 2 or {batch_axis % leaf.dim(), time_axis % leaf.dim()} != {0, 1}:
        return None
    first, second = int(leaf.shape[0]), int(leaf.shape[1])
    if first < 2 or second < 2 or first * second not in tuple(p.out.shape):
        return None
    batch_first = batch_axis % leaf.dim() == 0
    order = "batch, time" if batch_first else "time, batch"
    if causal:
        axes = f"output_time_axis={1 if batch_first else 0}"
    else:
        axes = f"output_batch_axis={0 if batch_first else 1}"
    return (
        f"the output has an axis of {first}*{second} = {first * second}: batch and time flattened together "
        f"(e.g. .view(-1, classes) for the loss). Restore them in the input's order ({order}): "
        f"output=lambda r: {p.selected}.view({first}, {second}, -1), {axes}"
    )


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


def _pairs(influence: Tensor, pairs: list[tuple[int, int]], arrow: str, limit: int = 12) -> str:
    values = [float(influence[p]) for p in pairs[:limit]]
    text = ", ".join(f"({i}{arrow}{j}) {v:.2g}" for (i, j), v in zip(pairs, values, strict=False))
    if len(pairs) > limit:
        text += f", ... ({len(pairs) - limit} more)"
    return text


def _view_patterns(n: int, out: Tensor, out_axis: int) -> list[tuple[int, Tensor, str]]:
    """Which examples each output example reads after a ``.view`` across the batch, for each other axis size T
    of the output: a time-first ``(T, n)`` tensor viewed as ``(n, T)``, and a batch-first one viewed the other
    way round. Computed by doing the wrong view on a tensor of example ids."""
    found = []
    for d, size in enumerate(out.shape):
        if d == out_axis % out.dim() or size < 2:
            continue
        t = int(size)
        for ids, how in (
            (
                torch.arange(n).expand(t, n).reshape(n, t),
                "a time-first (time, batch, ...) tensor viewed as (batch, time, ...)",
            ),
            (
                torch.arange(n).unsqueeze(1).expand(n, t).reshape(t, n).T,
                "a batch-first (batch, time, ...) tensor viewed as (time, batch, ...)",
            ),
        ):
            pattern = torch.zeros(n, n, dtype=torch.bool)
            pattern.scatter_(1, ids, True)
            found.append((t, pattern, how))
    return found


def _batch_hint(leaks: Tensor, out: Tensor, out_axis: int) -> str:
    """The cause the leak pattern points to, first; then the other usual ones. ``leaks``: n x n, diagonal
    included (which example reads which)."""
    n = int(leaks.shape[0])
    off = leaks & ~torch.eye(n, dtype=torch.bool)
    generic = (
        "the usual causes: reshaping a time-first (time batch hidden) tensor with .view(batch, time, -1) / "
        ".reshape(...) instead of .transpose(0, 1); a batch_first mismatch between the RNN and its input; a "
        "mean/normalisation over the batch axis; a BatchNorm without running statistics "
        "(track_running_stats=False), which normalises over the batch in eval mode too"
    )
    full = bool(off.sum() == n * (n - 1))
    if not full:
        for t, pattern, how in _view_patterns(n, out, out_axis):
            if torch.equal(leaks, pattern):
                return (
                    f"this is the pattern of {how} (time = {t}): each example reads a run of {t} consecutive "
                    "examples (mod batch), not itself only; swap the axes with .transpose(0, 1) (then "
                    ".contiguous() if needed) instead of .view/.reshape"
                )
    if bool(off.tril().eq(off).all()) and not bool(off[0].any()):
        return (
            "a lower-triangular leak with example 0 clean: each example reads the examples BEFORE it, the "
            "signature of a recurrence run across the batch: the RNN reads the batch axis as time (a batch_first "
            "mismatch: a batch-first tensor fed to a layer built without batch_first=True, or the reverse), or a "
            "cumsum/cumulative op over the batch axis"
        )
    if bool(off.triu().eq(off).all()) and not bool(off[-1].any()):
        return (
            "an upper-triangular leak with the last example clean: each example reads the examples AFTER it, a "
            "recurrence run backwards across the batch (the backward direction of a bidirectional layer reading "
            "the batch as time, or a flip over the batch axis)"
        )
    if full:
        return (
            "every example reads every other one: a mean, sum or normalisation over the batch axis (x.mean(0), "
            "a softmax or LayerNorm over the wrong axis, a BatchNorm with track_running_stats=False), attention across "
            "the batch, "
            f"or a .view across the batch with time >= batch; otherwise {generic}"
        )
    return f"{generic}"


def _band(future: Tensor) -> int | None:
    """k when the future leaks are exactly the band t < t' <= t + k (k < input steps - 1), else None. The mask
    may have fewer output steps (rows) than input steps (columns)."""
    rows, cols = int(future.shape[0]), int(future.shape[1])
    t, s = torch.nonzero(future, as_tuple=True)
    if len(t) == 0:
        return None
    k = int((s - t).max())
    if k >= cols - 1:
        return None
    ones = torch.ones(rows, cols, dtype=torch.bool)
    band = ones.triu(1) & ~ones.triu(k + 1)
    return k if torch.equal(future, band) else None


def _causal_hint(future: Tensor) -> str:
    every = bool(future.sum() == torch.ones_like(future).triu(1).sum())
    if every:
        return (
            "every output step reads EVERY later step: a bidirectional layer (bidirectional=True: check_causal "
            "is for unidirectional models) or attention without a causal mask"
        )
    k = _band(future)
    if k is not None:
        steps = "1 step" if k == 1 else f"{k} steps"
        return (
            f"every output step t reads the inputs up to t+{k} and no further: a band of {steps} ahead, the "
            f"signature of a centred convolution (kernel {2 * k + 1} with padding {k}, or padding='same') or a "
            f"look-ahead of {steps}; pad on the left only (F.pad(x, ({2 * k}, 0)) and no padding in the conv) or "
            "shift the output"
        )
    return (
        "look for a flip/reverse of the time axis, a time-first/batch-first mix-up, attention or a convolution "
        "without a causal mask, or a bidirectional layer (check_causal is for unidirectional models)"
    )


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
    chunk_size: int | None = None,
) -> InfluenceMatrix:
    """Check that each example's output depends on its own input only, for EVERY example.

    For every example i it back-propagates (a randomly weighted sum of) example i's output and requires the
    gradient with respect to every OTHER example's input to be exactly zero. Checking example 0 only misses
    the classic bug: ``out.view(batch, time, -1)`` applied to a time-first ``time batch hidden`` tensor (instead
    of ``out.transpose(0, 1)``) mixes examples for every row but the first.

    It does not take one backward pass per example: a backward pass of the summed outputs of a group of
    examples is exactly zero at an example outside the group when none of them reads it, so
    ``2 * ceil(log2(batch))`` groups (by the bits of the example index) prove every zero pair, computed as
    batched vector-Jacobian products; only examples that leak get a backward pass of their own. The matrix is
    the one a backward pass per example gives (same zero pairs, same values to float rounding): a batch of 128
    costs about what 14 backward passes cost.

    The model runs in eval mode (dropout off, restored after) with cuDNN and oneDNN off. BatchNorm in training mode mixes
    the batch by design, so eval mode is what a fair check needs.

    Args:
        model: the model (any callable; an ``nn.Module`` is switched to eval mode for the check).
        inputs: one input or a tuple of positional inputs (e.g. ``x`` or ``(x, lengths)``).
        call: ``call(model, *inputs) -> result``; default ``model(*inputs)``.
        output: ``output(result) -> tensor``; default the first tensor of the result.
        wrt: where gradients are taken: default the first floating-point input (a PackedSequence is padded
            back and re-packed), or, when an input holds token indices (an integer tensor with batch and time,
            or a PackedSequence of them), the output of the ``nn.Embedding`` they go through (captured with a
            forward hook; its axes are the index tensor's plus ``embed``; for packed indices, ``emb(packed.data)``,
            its rows are mapped back to their examples), even next to a float input such as ``h0`` (pass
            ``wrt=1`` to look at that one instead). An int picks an input by position: for token indices,
            the output of the embedding call that reads that input, so an embedding shared by several inputs
            (a seq2seq model's source and target) works: ``wrt=0`` the source, ``wrt=2`` the target of
            ``model(source, lengths, target_in)``; also when the embedding reads the input in parts, one step
            at a time (a teacher-forced decoder loop over ``target[:, t]``): gradients are then taken at one
            embedding of the whole input, whose rows each call gets. An input that is a tuple of float tensors sharing every axis
            but the last (an LSTM's ``(h0, c0)``, also with ``proj_size``) is differentiated as one tensor, its
            parts joined on the last axis: ``wrt=1, batch_axis=1`` for ``model(ids, (h0, c0))``. A module
            picks that module's output, or its first float tensor (``output`` of an RNN's ``(output, h_n)``;
            a PackedSequence's rows are mapped back to their example and step); it must run exactly once.
        batch_axis: the batch axis of that input (0 for batch_first, 1 for time-first sequences).
        output_batch_axis: the batch axis of the output; default ``batch_axis``. Use 1 for a hidden state
            ``layers*dirs batch hidden``.
        atol: the largest |gradient| tolerated between different examples (default 0: exactly zero).
        seed: seed of the random output weights.
        chunk_size: how many vector-Jacobian products one batched backward pass computes. Default: as many as
            keep one pass under about 256 MiB (the memory the forward pass saved for backward, times the chunk),
            at most 64. 1 computes one backward pass per product (the slow way, same result). Where the
            model's backward cannot be batched (no vmap rule: ``pack_padded_sequence`` inside the model, or an
            operation vmap warns about in a batched pass), the check runs one pass per product (the rest of them,
            after such a pass), which is then faster, and ``how`` says why.

    Returns:
        The ``batch x batch`` matrix of max |d output_i / d input_j| (rows: output example i), a tensor whose
        ``how`` says how it was computed (batched, or looped and why).

    Raises:
        CheckFailed: naming every offending pair ``(i <- j)`` with its max |grad|, the cause its pattern
            points to first.
    """
    refuse_meta("check_batch_independence", model, inputs)
    __tracebackhide__ = True
    out_axis = batch_axis if output_batch_axis is None else output_batch_axis
    p = _probe(
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
        column=0,
        chunk_size=chunk_size,
    )
    n_out, n_in = p.n_out, p.n_in
    if n_out != n_in:
        raise fail(
            "batch independence: the output's batch axis and the input's batch axis have different sizes.",
            f"{output_name(output)} {describe(p.out)} has {n_out} along axis {out_axis}; {p.name} "
            f"{describe(p.leaf)} has batch {n_in} along axis {batch_axis}",
            _flattened_hint(p, batch_axis, 1 - batch_axis if batch_axis in (0, 1) else 1, causal=False)
            or _axis_hint(p, "output_batch_axis", out_axis)
            or "set batch_axis / output_batch_axis to the batch axes (time-first tensors have batch at axis 1, "
            "a hidden state layers*dirs batch hidden too), or output=... to pick another tensor of the result; "
            "an output flattened to (batch*time, ...) needs output=lambda r: r.view(...) back to its batch and "
            "time axes, in the order the model had them",
        )
    if p.n_in == 1:
        warn_vacuous(VACUOUS_BATCH)
    matrix, note = separated_rows(p.engine, n_out)
    influence = finish(matrix, p.engine.how(note))
    leaks = matrix > atol
    off_mask = leaks & ~torch.eye(n_out, dtype=torch.bool)
    if bool(off_mask.any()):
        off = [(int(i), int(j)) for i, j in torch.nonzero(off_mask).tolist()]
        worst = max(off, key=lambda q: float(matrix[q]))
        clean = torch.nonzero(~off_mask.any(dim=1)).flatten().tolist()
        body = [
            f"gradient of {output_name(output)} (batch axis {out_axis}) for example i with respect to "
            f"{p.name} (batch axis {batch_axis}) of example j != i must be zero.",
            f"{len(off)} of {n_out * (n_out - 1)} pairs (i <- j) are not; largest max|grad| "
            f"{float(matrix[worst]):.3g} at (i={worst[0]} <- j={worst[1]}).",
            f"pairs (i <- j) max|grad|: {_pairs(matrix, off, '<-')}",
        ]
        if clean:
            body.append(f"examples whose output is clean: {clean} (a check of example 0 alone can pass)")
        body += _matrix(matrix, "i", "j")
        raise fail(
            "batch independence failed: an example's output depends on OTHER examples' inputs.",
            "\n".join(body),
            _batch_hint(leaks, p.out, out_axis),
        )
    if not bool(leaks.diagonal().any()):
        raise fail(
            "batch independence: no example's output depends on its own input, so the check saw nothing.",
            f"max|grad| of {output_name(output)} with respect to {p.name} is <= {atol:g} everywhere",
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
    chunk_size: int | None = None,
) -> InfluenceMatrix:
    """Check that the output at step t does not depend on inputs after t, for every t (unidirectional models).

    For every output step t it back-propagates (a randomly weighted sum of) the output at t and requires the
    gradient with respect to the input at every later step t' > t to be exactly zero. A bidirectional RNN, a
    sequence flipped the wrong way, or attention without a causal mask fails. The steps' backward passes run
    batched (vector-Jacobian products in chunks), so at a small batch 200 steps cost a few backward passes, not
    200. The rows of one pass are capped by memory (``chunk_size=None``: rows x the bytes the forward saved
    under 256 MiB), so a large batch at many steps runs nearly a pass per step: causality needs no large
    batch, check it on a few examples. Each chunk of steps but the last runs on the model called again on the
    steps up to the chunk's last one, where one backward pass on the whole sequence proves that no later step
    reaches the chunk and the rerun's outputs and gradients match the whole sequence's. The reruns call a copy
    of the model and put the random number generators back; a model that reads the sequence's length, keeps
    state, has hooks or is compiled runs on the whole sequence (``how`` says which ran).

    The model runs in eval mode with cuDNN and oneDNN off (restored after).

    A model that packs its input and pads its output back without ``total_length`` returns fewer steps than the
    padded input has (the longest length): the check then compares the steps both have, when the input's extra
    steps (padding) reach no output; ``pad_packed_sequence(..., total_length=x.shape[1])`` makes them equal.

    Args:
        model: the model.
        inputs: one input or a tuple of positional inputs.
        time_axis: the time axis of the differentiated input (1 for batch_first, 0 for time-first sequences).
        output_time_axis: the time axis of the output; default ``time_axis``.
        call, output, wrt, atol, seed, chunk_size: as in :func:`check_batch_independence` (token indices are
            probed at the output of the embedding they go through; packed ones row by row, mapped to steps).

    Returns:
        The ``time x time`` matrix of max |d output_t / d input_t'| (rows: output step t), with ``how``.

    Raises:
        CheckFailed: naming every offending pair ``(t <- t')`` with its max |grad|, and whether the leak
            reaches every later step or a band of k steps.
    """
    refuse_meta("check_causal", model, inputs)
    __tracebackhide__ = True
    out_axis = time_axis if output_time_axis is None else output_time_axis
    p = _probe(
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
        column=1,
        chunk_size=chunk_size,
        rerun=True,
    )

    def different_sizes(reads: str = "") -> CheckFailed:
        return fail(
            "causality: the output's time axis and the input's time axis have different sizes.",
            f"{output_name(output)} {describe(p.out)} has {p.n_out} along axis {out_axis}; {p.name} "
            f"{describe(p.leaf)} has {p.n_in} along axis {time_axis}",
            _flattened_hint(p, 1 - time_axis if time_axis in (0, 1) else 0, time_axis, causal=True)
            or _axis_hint(p, "output_time_axis", out_axis, tensors_only=bool(reads))
            or reads
            or "set time_axis / output_time_axis (batch_first sequences have time at axis 1, time-first at 0), "
            "or output=... to pick another tensor of the result: the check needs a per-step output. A model "
            "that packs and pads back needs pad_packed_sequence(..., total_length=x.shape[1]) for its output to "
            "keep the input's steps",
        )

    if p.n_out > p.n_in or p.n_in == 0:  # more output steps than input steps: no padding explains it
        cut = f"r[{':, ' * out_axis}:{p.n_in}]"
        raise different_sizes(
            f"a model that predicts steps beyond its input (pytorch/examples' Sequence(x, future=3)) is causal "
            f"on the steps it was given: compare those with output=lambda r: {cut}"
            if p.n_in and p.out.dim() > out_axis >= 0
            else ""
        )
    reran = ""  # how the reruns went (for ``how``, not for a failure: its numbers are the whole sequence's)
    if p.n_out == p.n_in:
        matrix, reran = causal_rows(p.engine, p.n_out, p.prefix)
    else:
        matrix = every_row(p.engine, p.n_out)
    n = min(p.n_out, p.n_in)
    note = ""
    if p.n_out != p.n_in:
        if n == 0:
            raise different_sizes()
        if bool((matrix[:, n:] > atol).any()):
            # outputs read the input's extra steps: the output's steps are not the input's (strided), or the
            # model reads ahead (x[:, 1:]); which one, the sizes cannot tell
            raise different_sizes(
                f"the outputs read the input's last {p.n_in - n} step(s), so they are no padding: either the "
                "output's steps are not the input's (every k-th step, a pooled axis, a strided convolution "
                "before the recurrent layer: wrt=<that front-end module>, with time_axis=<its output's time axis> "
                "and output_time_axis=<the output's>, checks the rest at the output's own rate; repeating the "
                "output to the input's rate reads ahead by construction), or the model "
                "reads ahead (an input shifted with x[:, 1:] gives output step t the input of step t+1: a "
                "look-ahead, which causality forbids)"
            )
        note = (
            f"compared the {n} steps both have: the other {p.n_in - n} steps of the input are padding that "
            "reaches nothing (no total_length)"
        )
        matrix = matrix[:, :n].contiguous()
    if p.n_in == 1:
        warn_vacuous(VACUOUS_STEP)
    influence = finish(matrix, p.engine.how("; ".join(filter(None, [note, reran]))))
    future_mask = (matrix > atol).triu(1)
    if bool(future_mask.any()):
        future = [(int(t), int(s)) for t, s in torch.nonzero(future_mask).tolist()]
        worst = max(future, key=lambda q: float(matrix[q]))
        earliest = min(t for t, _ in future)
        body = [
            f"gradient of {output_name(output)} at step t (time axis {out_axis}) with respect to {p.name} at a "
            f"later step t' > t (time axis {time_axis}) must be zero.",
            f"{len(future)} of {int(torch.ones_like(future_mask).triu(1).sum())} pairs (t <- t') are not, the "
            "first at output step "
            f"{earliest}; largest max|grad| {float(matrix[worst]):.3g} at (t={worst[0]} <- t'={worst[1]}).",
            f"pairs (t <- t') max|grad|: {_pairs(matrix, future, '<-')}",
        ]
        if note:
            body.append(note)
        body += _matrix(matrix, "t", "t'")
        raise fail(
            "causality failed: the output at step t depends on inputs from the future (steps after t).",
            "\n".join(body),
            _causal_hint(future_mask),
        )
    if not bool((matrix > atol).tril().any()):
        raise fail(
            "causality: no output step depends on its own or earlier inputs, so the check saw nothing.",
            f"max|grad| of {output_name(output)} with respect to {p.name} is <= {atol:g} for all t' <= t",
            "pass time_axis / output_time_axis / wrt=... so the check differentiates the tensors that matter",
        )
    return influence
