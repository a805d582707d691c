"""The influence matrix of the gradient probes, from batched vector-Jacobian products (issue 17).

``influence[i, j] = max |d (w_i . output slice i) / d (input slice j)|``, with fixed random positive weights
``w``: one vector-Jacobian product (VJP) per output slice (row). The rows are computed many at a time, in
chunks: ``torch.func.vmap`` over ``torch.autograd.grad``, one backward pass with a batch of cotangents. That is
the same arithmetic as one backward pass per row, but in large operations, so the per-operation overhead that
dominates a small recurrent model's backward pass (hundreds of tiny steps) is paid once per chunk. Where the
model's backward cannot be batched (vmap refuses an operation), the rows are computed one backward pass each:
the same numbers, and the returned matrix says so in ``how``.

Batch independence needs far fewer than one VJP per example. A VJP of the summed outputs of a GROUP of examples
S, read at an example j outside S, is exactly zero when (and, with random positive weights, only when) no
example of S depends on j. With groups chosen so that no example's set of groups contains another's, every
pair i != j is separated by some group, so about ``log2(batch) + 2`` VJPs (10 for 128) prove every zero pair
of a correct model, and give its diagonal too (the group's gradient at i is i's own when no other member
reaches i). Only the rows that these groups cannot settle (the leaking ones) are computed one VJP each. The matrix is the same
as one VJP per row: the same pairs are zero, and the values agree to float rounding.
"""

import itertools
import math
import re
import warnings
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

CHUNK_BUDGET_BYTES = 256 * 2**20
"""Default memory budget of one batched backward pass: ``chunk_size=None`` takes as many rows per pass as keep
``rows * (bytes the forward pass saved for backward)`` under this."""

MAX_CHUNK = 64
"""The most rows in one batched backward pass by default (larger chunks stop paying off on a CPU)."""


class InfluenceMatrix(Tensor):
    """The influence matrix a gradient check returns (a ``torch.Tensor``), plus ``how`` it was computed:
    ``"batched: ..."`` (VJPs in chunks) or ``"looped: ..."`` (one backward pass per row, with the reason the
    batched path was not taken). Either way the numbers are the same. ``how`` is on the returned matrix only,
    not on tensors computed from it."""

    how: str = ""


def finish(matrix: Tensor, how: str) -> InfluenceMatrix:
    result = cast(InfluenceMatrix, matrix.as_subclass(InfluenceMatrix))
    result.how = how
    return result


def saved_bytes_hooks() -> tuple[dict[int, int], "torch.autograd.graph.saved_tensors_hooks"]:
    """Count the storage bytes the forward pass saves for backward (each storage once): what one more row of a
    batched backward costs in memory, roughly."""
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        try:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. sparse, functional)
            pass
        return t

    return seen, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)


def auto_chunk(saved: int) -> int:
    return max(1, min(MAX_CHUNK, CHUNK_BUDGET_BYTES // max(saved, 1)))


UNBATCHED_NODES = {
    "PackPaddedSequenceBackward0": "aten::_pack_padded_sequence_backward (pack_padded_sequence)"
}
"""Autograd nodes whose backward vmap cannot batch, found by measurement: with one in the graph, a batched pass
costs many times the products it batches (a packed LSTM tagger: 14 s batched, 2.5 s one pass each)."""


def _unbatched_node(out: Tensor) -> str | None:
    """The first node of ``out``'s autograd graph listed in ``UNBATCHED_NODES``, described, else None."""
    seen: set[Any] = set()
    stack = [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        found = UNBATCHED_NODES.get(node.name())
        if found is not None:
            return found
        stack.extend(fn for fn, _ in node.next_functions)
    return None


LOOP_ON_FALLBACK = True
"""Where vmap warns that it has no batching rule for an operation of the backward pass, run the remaining
products one backward pass each (tests switch it off to compare vmap's own fallback)."""


class VJPRows:
    """Computes rows of the influence matrix: ``rows(masks)`` -> ``max |grad|`` per input slice, one row per mask.

    A mask row selects the output slices whose weighted sum is back-propagated (one slice: an exact row of the
    influence matrix; several: a group)."""

    def __init__(
        self,
        out: Tensor,
        leaf: Tensor,
        weights: Tensor,
        out_axis: int,
        columns: Callable[[Tensor], Tensor],
        chunk_size: int,
    ) -> None:
        self.out, self.leaf, self.weights, self.columns = out, leaf, weights, columns
        self.out_axis = out_axis % out.dim()
        self.chunk_size = chunk_size
        self.batched = chunk_size > 1
        self.reason = "chunk_size=1" if chunk_size == 1 else ""
        if self.batched and (node := _unbatched_node(out)) is not None:
            self.batched = False
            self.reason = (
                f"the backward pass runs {node}, which vmap has no batching rule for: one backward pass per "
                "product is faster than vmap's per-product fallback"
            )
        self.passes = 0
        self.vjps = 0

    def rows(self, masks: Tensor) -> Tensor:
        """``(k, n_out)`` 0/1 masks -> ``(k, n_in)`` float64 on the CPU."""
        k = int(masks.shape[0])
        found: list[Tensor] = []
        chunks = max(1, math.ceil(k / max(self.chunk_size, 1)))
        size = math.ceil(k / chunks) if k else 0
        for start in range(0, k, max(size, 1)):
            # where a pass shows vmap falling back to a per-product loop (an operation without a batching rule),
            # grads switches to one backward pass per product for the rest
            found.append(self.columns(self.grads(masks[start : start + size])))
        if not found:
            return torch.zeros(0, 0, dtype=torch.float64)
        return torch.cat(found)

    def _cotangents(self, masks: Tensor) -> Tensor:
        view = [int(masks.shape[0])] + [1] * self.out.dim()
        view[self.out_axis + 1] = int(masks.shape[1])
        m = masks.to(device=self.out.device, dtype=self.weights.dtype).view(view)
        return m * self.weights.unsqueeze(0)

    def grads(self, masks: Tensor) -> Tensor:
        """The VJPs of ``masks`` (``(k, n_out)``) in one batched backward pass (or one pass each where batching
        fails): ``(k, *leaf.shape)``, detached."""
        self.vjps += int(masks.shape[0])
        cot = self._cotangents(masks)
        if self.batched and masks.shape[0] > 1:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    grad = torch.func.vmap(self._vjp)(cot)
                self.passes += 1
                slow = [str(w.message) for w in caught if "batching rule" in str(w.message).lower()]
                if slow and not LOOP_ON_FALLBACK:
                    ops = sorted({m.group(1) for w in slow if (m := re.search(r"(aten::\w+)", w))})
                    self.reason = f"vmap ran {', '.join(ops) or 'some operations'} one product at a time"
                elif slow:
                    ops = sorted({m.group(1) for w in slow if (m := re.search(r"(aten::\w+)", w))})
                    self.batched = False
                    self.reason = (
                        f"vmap has no batching rule for {', '.join(ops) or 'some operations'} and would loop over "
                        f"the products inside every batched pass (seen in a pass of {int(masks.shape[0])}): one "
                        "backward pass per product is faster"
                    )
                for w in caught:
                    if "batching rule" not in str(w.message).lower():
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                return grad.detach()
            except (RuntimeError, NotImplementedError, TypeError, ValueError) as e:
                self.batched = False
                self.reason = f"batching failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        return torch.cat([self._one(c) for c in cot])

    def _vjp(self, cot: Tensor) -> Tensor:
        (grad,) = torch.autograd.grad(self.out, self.leaf, cot, retain_graph=True, allow_unused=True)
        return torch.zeros_like(self.leaf) if grad is None else grad

    def _one(self, cot: Tensor) -> Tensor:
        (grad,) = torch.autograd.grad(self.out, self.leaf, cot, retain_graph=True, allow_unused=True)
        self.passes += 1
        return (torch.zeros_like(self.leaf) if grad is None else grad.detach()).unsqueeze(0)

    def how(self, extra: str = "") -> str:
        extra = f"; {extra}" if extra else ""
        if self.batched:
            note = f" ({self.reason})" if self.reason else ""
            passes = "1 backward pass" if self.passes == 1 else f"{self.passes} backward passes"
            return (
                f"batched: {self.vjps} vector-Jacobian products in {passes} (chunks of up to {self.chunk_size})"
                f"{extra}{note}"
            )
        return f"looped: {self.vjps} vector-Jacobian products, one backward pass each ({self.reason}){extra}"


def axis_columns(in_axis: int, n_in: int) -> Callable[[Tensor], Tensor]:
    """Batched gradients ``(k, *leaf.shape)`` -> ``(k, n_in)``: ``max |grad|`` over all but ``in_axis``."""

    def columns(grad: Tensor) -> Tensor:
        k = int(grad.shape[0])
        g = grad.abs().movedim(in_axis + 1, 1).reshape(k, n_in, -1)
        return g.amax(dim=-1).to("cpu", torch.float64)

    return columns


def row_columns(column_of_row: Tensor, n_in: int) -> Callable[[Tensor], Tensor]:
    """For a packed leaf ``(total, ...)``: each row's ``max |grad|``, then the max per column (example or step)."""

    def columns(grad: Tensor) -> Tensor:
        k = int(grad.shape[0])
        per_row = grad.abs().reshape(k, int(grad.shape[1]), -1).amax(dim=-1).to("cpu", torch.float64)
        index = column_of_row.unsqueeze(0).expand(k, -1)
        return torch.zeros(k, n_in, dtype=torch.float64).scatter_reduce(1, index, per_row, "amax")

    return columns


def every_row(engine: VJPRows, n_out: int) -> Tensor:
    """The whole matrix, one VJP per row."""
    return engine.rows(torch.eye(n_out))


def separating_groups(n: int) -> Tensor | None:
    """``(m, n)`` group memberships such that every pair i != j has a group holding i and not j, with the fewest
    groups: example i's memberships are the i-th ``m // 2``-subset of ``m`` groups (equal-size subsets never
    contain one another), ``m`` the least with ``comb(m, m // 2) >= n`` (10 groups for 128 examples). None when
    that is not fewer than ``n`` (one product per row is as cheap)."""
    m = 1
    while math.comb(m, m // 2) < n:
        m += 1
    if m >= n:
        return None
    codes = list(itertools.islice(itertools.combinations(range(m), m // 2), n))
    member = torch.zeros(m, n, dtype=torch.bool)
    for i, code in enumerate(codes):
        member[list(code), i] = True
    return member


def separated_rows(engine: VJPRows, n: int) -> tuple[Tensor, str]:
    """The square ``n x n`` batch matrix from group VJPs (see the module's docstring), exact rows where needed.

    Returns the matrix and a note on how many rows the groups settled."""
    masks = separating_groups(n)
    if masks is None:
        return every_row(engine, n), ""
    group = engine.rows(masks)  # (G, n): max |grad| at example j of the group's summed VJP
    zero = group == 0
    off = ~torch.eye(n, dtype=torch.bool)
    # proved[i, j]: some group holds i, not j, and its gradient at j is exactly zero
    proved = (masks.T.double() @ (~masks & zero).double()) > 0
    unproved = off & ~proved
    need = unproved.any(dim=1)
    # group g gives example i's own value when no other member of g is unproved at i
    usable = masks & ~((masks.double() @ unproved.double()) > 0)
    first = torch.where(usable.any(dim=0), usable.double().argmax(dim=0), -1)
    need |= first < 0
    matrix = torch.zeros(n, n, dtype=torch.float64)
    settled = torch.nonzero(~need).flatten()
    matrix[settled, settled] = group[first[settled], settled]
    rows = torch.nonzero(need).flatten()
    if len(rows):
        matrix[rows] = engine.rows(torch.eye(n)[rows])
    groups = len(masks)
    return (
        matrix,
        f"{groups} group products settled {len(settled)} of {n} rows, {len(rows)} computed one each",
    )
