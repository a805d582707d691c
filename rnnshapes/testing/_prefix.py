"""``check_causal``'s rows computed on the model rerun on a prefix of the steps (issue 17) (private).

Row t of the causal matrix (output step t) is zero beyond step t for a causal model, so its backward pass over
the whole sequence spends steps t+1.. carrying zeros: one chunk of rows ``[a, b)`` needs only the model run on
the first ``b`` steps, which costs ``b / time`` of a pass over the whole sequence (at 200 steps in 4 chunks, 5/8
of the work). That holds for a causal model that does not read the sequence's length, and neither is assumed:

1. One backward pass over the WHOLE sequence computes, beside the last chunk's rows, one group product per
   earlier chunk: the weighted sum of its rows. Its gradient at the steps from ``b`` on is exactly zero when
   (and, with random positive weights, only when) no row of the chunk reads a step from ``b`` on. Where one
   does, the model leaks: every row runs on the whole sequence, so a failure reports the whole sequence's
   numbers, as before.
2. Each chunk's rerun must give the whole run's outputs on its steps bit for bit, and the chunk's group product,
   computed again on the rerun beside its rows, must be the whole sequence's bit for bit. A model that reads the
   sequence's length (a mean over time, positions counted from the end, a faster path for long inputs) or keeps
   state between calls fails that, down to a difference of one unit of rounding, and that chunk's rows run on
   the whole sequence. Equality to float rounding would not do: a term that only the whole length has can leak
   less than the outputs' rounding (a stranger's example: a softmax masked by renormalizing on long inputs
   only), and the reruns would hide it.

So the verdict is the whole sequence's: the pairs after each chunk's last step are proved zero on it, the reruns
are shown to compute the whole sequence's function on their steps, and where a rerun shows a leak inside its
chunk every row is computed on the whole sequence again, so a failure reports the whole sequence's numbers. The
price of bit-for-bit: torch's CPU kernels round some rows differently on fewer rows (a 5 -> 4 linear layer, the
input gradients of convolutions, an LSTM at some lengths), and those chunks run on the whole sequence; ``how``
says how many did. GRUs and RNNs of usual widths reproduce theirs, LSTMs at most lengths.

The reruns call a copy of the model that shares nothing with it that can change (``_twin``), so nothing a
forward changes in the model (a hidden state kept between calls, a counter, a cached mask, a memory bank written
through ``.data``, a buffer written only on short calls) is left changed, and each rerun gets a copy of every
input (a cache it appends to, a state it copies into); torch's, Python's and numpy's random number generators,
and those the model's code keeps at module level, are put back after them and their warnings are not shown.
What a forward does outside the model (a print, a log line, a module-level counter, a hook it puts on a tensor,
as Grad-CAM does) sees the extra calls and backward passes, as it sees a number of backward passes that depends
on ``chunk_size``. Reruns are not tried where their effects could reach beyond the model or the copy would not
be the model: a model that is not an ``nn.Module`` or is called through ``call=``, one with module hooks (which
may record what they see; ``guard``'s are fine), a TorchScript or ``torch.compile``'d module, a model whose call
writes into its parameters or buffers (in place, or by assigning ``.data``), one that cannot be copied, or costs
more to copy than the reruns save, or whose copy would still reach something that can change with it (a weakref
to its owner, a closure over ``self``, a mutable class attribute or default argument).
"""

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ._calls import tensor_leaves
from ._influence import VJPRows, axis_columns, every_row
from ._twin import copied, rng_kept, twin, unsafe

RERUN = True
"""Compute chunks of rows on reruns where the checks allow (tests switch it off to compare with the whole
sequence's numbers)."""


@dataclass
class Prefix:
    """How to rerun a causal check's model on its input's first ``b`` steps."""

    rerun: Callable[[nn.Module, int], tuple[Tensor, Tensor]]
    """``(twin, b)`` -> ``(output, leaf)`` of the model's copy called on the first ``b`` steps (may raise)."""
    leaf_axis: int
    """The leaf's time axis."""
    weights: Tensor
    """The whole sequence's output weights (a rerun's are their first ``b`` steps)."""
    model: Any
    refused: str = ""
    """Why the model is not rerun (for ``how``), or ""."""
    inputs: Any = ()
    """The call's inputs (what their classes bind is put back after the reruns)."""


def _same_bits(got: Any, want: Tensor) -> bool:
    """The same tensor bit for bit: shape, dtype, device and every value (a NaN matches nothing)."""
    return (
        isinstance(got, Tensor)
        and got.shape == want.shape
        and got.dtype == want.dtype
        and got.device == want.device
        and bool(torch.equal(got, want))
    )


def _bounds(n: int, chunks: int, start: int = 0) -> list[tuple[int, int]]:
    return [(start + round(i * n / chunks), start + round((i + 1) * n / chunks)) for i in range(chunks)]


def plan(n: int, chunk: int) -> tuple[list[tuple[int, int]], bool] | None:
    """Row chunks ``[a, b)`` of at most ``chunk`` rows, and whether the first chunks' group products fit beside
    the last chunk's rows in one pass; None when one chunk holds every row (no rerun saves anything)."""
    k = math.ceil(n / chunk)
    if k < 2:
        return None
    fit = k
    while fit - 1 < chunk:  # the last chunk gives up one row per group product
        last = chunk - (fit - 1)
        if math.ceil((n - last) / chunk) <= fit - 1:
            front = _aligned(n - last, fit - 1, chunk, n) or _bounds(n - last, fit - 1)
            return front + [(front[-1][1], n)], True
        fit += 1
    return _bounds(n, k), False


ALIGN = 8
"""Reruns run on a multiple of this many steps where the plan allows: torch's CPU matrix products work in blocks
of rows (4 in float64), and rows of a block that the whole sequence's product filled but a shorter run's does
not are rounded differently, which a rerun must not be (float64 LSTMs and linear layers matched at multiples of
8 steps only, a stranger's measurement)."""


def _aligned(end: int, chunks: int, chunk: int, n: int) -> list[tuple[int, int]] | None:
    """``chunks`` chunks of at most ``chunk`` rows over the first ``end`` (or up to ``ALIGN - 1`` more, short of
    ``n``) steps, each ending on a multiple of ``ALIGN``; None where none fit."""
    blocks = math.ceil(end / ALIGN)  # the last chunk gives up what the front takes beyond end
    if blocks < chunks or math.ceil(blocks / chunks) * ALIGN > chunk or blocks * ALIGN >= n:
        return None
    return [(a * ALIGN, b * ALIGN) for a, b in _bounds(blocks, chunks)]


def causal_rows(engine: VJPRows, n: int, prefix: Prefix | None) -> tuple[Tensor, str]:
    """The ``n x n`` causal matrix; chunks of rows on reruns of the model where ``prefix`` allows (see the
    module's docstring). Returns the matrix and a note for ``how``."""
    chunks = plan(n, engine.chunk_size) if RERUN and prefix is not None and engine.batched else None
    if (
        prefix is None or chunks is None or not chunks[1]
    ):  # not chunks[1]: groups would need passes of their own
        return every_row(engine, n), ""
    bounds = chunks[0]
    made, refused = (None, prefix.refused) if prefix.refused else twin(prefix.model)
    if made is None:
        return every_row(engine, n), f"no reruns: {refused}"
    eye = torch.eye(n)
    groups = torch.stack([eye[a:b].sum(0) for a, b in bounds[:-1]])
    last = eye[bounds[-1][0] :]
    raw = engine.grads(torch.cat([groups, last]))
    group, rows = raw[: len(groups)], [engine.columns(raw[len(groups) :])]
    engine.vjps -= len(groups)  # the products counted are the matrix's rows; the note names the groups
    axis = prefix.leaf_axis % engine.leaf.dim()
    leaks = any(bool(g.narrow(axis, b, n - b).ne(0).any()) for g, (_, b) in zip(group, bounds, strict=False))
    if leaks or not engine.batched:
        return torch.cat([engine.rows(eye[: bounds[-1][0]]), *rows]), ""  # the whole sequence's rows, as ever
    front_rows: list[Tensor] = []
    reran = 0
    with rng_kept(engine.leaf.device, made, prefix.inputs):
        for g, (a, b) in zip(group, bounds, strict=False):
            found = _rerun_chunk(engine, prefix, made, g, a, b, n, axis)
            if found is None:
                found = engine.rows(eye[a:b])
            else:
                reran += 1
            front_rows.append(found)
    matrix = torch.cat([*front_rows, *rows])
    if reran and bool(
        matrix.triu(1).ne(0).any()
    ):  # a leak inside a chunk: a failure's numbers are the whole's
        return torch.cat([engine.rows(eye[: bounds[-1][0]]), *rows]), ""
    skipped = len(bounds) - 1 - reran
    groups_said = (
        "1 group product on the whole sequence proves"
        if len(groups) == 1
        else (f"{len(groups)} group products on the whole sequence prove")
    )
    note = (
        f"{reran} of {len(bounds)} chunks on the model rerun on the steps up to their last row ({groups_said} "
        "that no later step reaches them)"
    )
    if skipped:
        note += f"; {skipped} on the whole sequence, as a rerun's numbers did not match it"
    return matrix, note


def _rerun_chunk(
    engine: VJPRows,
    prefix: Prefix,
    twin: Any,
    group: Tensor,
    a: int,
    b: int,
    n: int,
    axis: int,
) -> Tensor | None:
    """Rows ``[a, b)`` from the model rerun on steps ``[0, b)``, or None where the rerun is not shown to be the
    whole sequence's model: it fails, or its outputs on those steps, or its group product (computed beside the
    rows), are not the whole sequence's bit for bit."""
    try:
        with warnings.catch_warnings():  # what the model warns about its own calls, not the reruns
            warnings.simplefilter("ignore")
            out, leaf = prefix.rerun(twin, b)
            out_axis = engine.out_axis
            if not _same_bits(out, engine.out.detach().narrow(out_axis, 0, b)) or not out.requires_grad:
                return None
            if not isinstance(leaf, Tensor) or leaf.shape != engine.leaf.narrow(axis, 0, b).shape:
                return None
            weights = prefix.weights.narrow(out_axis, 0, b)
            sub = VJPRows(out, leaf, weights, out_axis, axis_columns(axis, b), engine.chunk_size)
            eye = torch.eye(b)
            raw = sub.grads(torch.cat([eye[a:b], eye[a:b].sum(0, keepdim=True)]))  # the rows, then the group
    except Exception:  # noqa: BLE001  # a model that cannot run (or differentiate) on fewer steps
        return None
    engine.passes += sub.passes
    engine.vjps += sub.vjps - 1  # the group is not a row of the matrix
    if not sub.batched:
        engine.batched, engine.reason = False, sub.reason
    if not _same_bits(raw[-1], group.narrow(axis, 0, b)):
        return None
    columns = sub.columns(raw[:-1])  # (rows, b)
    return torch.cat([columns, columns.new_zeros(len(columns), n - b)], dim=1)


def prefix_of(
    model: Any,
    args: tuple[Any, ...],
    position: int | None,
    caller_axis: int,
    leaf_axis: int,
    n: int,
    weights: Tensor,
    again: Callable[[nn.Module, tuple[Any, ...]], tuple[Tensor, Tensor]],
    refused: str,
) -> Prefix | None:
    """How to rerun the model on the first steps of input ``position`` (cut along ``caller_axis``, which has
    ``n`` steps); None where the leaf is not one input's steps (packed rows, a state, a module's output), and a
    ``refused`` one where a rerun is not safe (see the module's docstring) or another input may hold steps too
    (a tensor with an axis of ``n``, a packed sequence): cutting one input alone would not be the same call.
    ``refused``: why not already known (the call wrote into the model's tensors: a cache, a state kept in a
    parameter; ``call=``), or ""."""
    if position is None:
        return None
    x = args[position]
    if not isinstance(x, Tensor) or not -x.dim() <= caller_axis < x.dim() or int(x.shape[caller_axis]) != n:
        return None
    refused = refused or unsafe(model) or ""
    for i, other in enumerate(args):
        if i != position and (_holds_packed(other) or any(n in t.shape for _, t in tensor_leaves(other))):
            refused = refused or f"input {i} may hold the steps too"

    def rerun(twin: nn.Module, b: int) -> tuple[Tensor, Tensor]:
        # every input copied, as a model may write into its inputs (a state, a cache the forward appends to)
        others = tuple(None if i == position else a for i, a in enumerate(args))
        memo = {id(t): t.detach().clone().requires_grad_(t.requires_grad) for _, t in tensor_leaves(others)}
        cut = list(copied(others, memo)[0])
        cut[position] = x.narrow(caller_axis, 0, b).clone()
        return again(twin, tuple(cut))

    return Prefix(rerun, leaf_axis, weights, model, refused, args)


def _holds_packed(x: Any) -> bool:
    if isinstance(x, PackedSequence):
        return True
    if isinstance(x, Mapping):
        return any(_holds_packed(v) for v in x.values())
    return isinstance(x, (tuple, list)) and any(_holds_packed(v) for v in x)
