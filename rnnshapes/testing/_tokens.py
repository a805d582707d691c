"""Where an embedding call's indices stand in a token input (private, used by ``_probe``): the input itself, a
view of part of it (placed by storage), or a copy of all of it (placed by values); and an nn.EmbeddingBag's
reduction, so that a zero leaf added to its rows has the bag's own Jacobian."""

import itertools
from typing import Any

import torch
from torch import Tensor, nn


def _lookup_input(module: nn.Module, inp: Any, kwargs: Any, out: Any) -> Tensor | None:
    """The index tensor of an embedding call: one output row per index, or (an nn.EmbeddingBag without
    offsets) one per row of a 2-D index tensor."""
    fed = inp[0] if inp else kwargs.get("input")
    if not isinstance(fed, Tensor) or not isinstance(out, Tensor):
        return None
    if fed.is_floating_point() or fed.is_complex() or fed.numel() == 0:
        return None
    if isinstance(module, nn.EmbeddingBag):
        offsets = inp[1] if len(inp) > 1 else kwargs.get("offsets")
        if offsets is not None or fed.dim() != 2 or tuple(out.shape) != (fed.shape[0], out.shape[-1]):
            return None
        return fed
    return fed if tuple(out.shape[:-1]) == tuple(fed.shape) else None


def _bag_weights(inp: Any, kwargs: Any) -> Tensor | None:
    weights = inp[2] if len(inp) > 2 else kwargs.get("per_sample_weights")
    return weights if isinstance(weights, Tensor) else None


def _bag_reduce(bag: nn.EmbeddingBag, fed: Tensor, rows: Tensor, weights: Tensor | None) -> Tensor:
    """``rows`` ``(bags, length, embed)``, one per index of ``fed``, reduced as ``bag`` reduces its embeddings:
    the same Jacobian with respect to each row (padding_idx rows excluded)."""
    keep = torch.ones_like(fed, dtype=torch.bool) if bag.padding_idx is None else fed != bag.padding_idx
    if bag.mode == "max":
        values = nn.functional.embedding(fed, bag.weight).detach()
        values = values.masked_fill(~keep.unsqueeze(-1), float("-inf"))
        picked = rows.gather(1, values.argmax(1, keepdim=True)).squeeze(1)
        return picked * keep.any(1, keepdim=True).to(rows.dtype)  # an empty bag is zeros
    w = keep.to(rows.dtype)
    if weights is not None:
        w = w * weights.to(rows.dtype)
    if bag.mode == "mean":
        w = w / keep.sum(1, keepdim=True).clamp(min=1).to(rows.dtype)
    return (rows * w.unsqueeze(-1)).sum(1)


def _element_tags(base: Tensor) -> Tensor | None:
    """A storage-sized tensor holding, at each storage element of ``base``, its flat index in ``base`` (-1
    elsewhere); None when ``base`` has no plain storage or its elements overlap (``unfold``, ``expand``)."""
    try:
        size = base.untyped_storage().nbytes() // base.element_size()
        tag = torch.full((size,), -1, dtype=torch.long)
        view = tag.as_strided(base.shape, base.stride(), base.storage_offset())
        view.copy_(torch.arange(base.numel()).view(base.shape))
    except (RuntimeError, NotImplementedError):  # no storage (functional, fake)
        return None
    if not torch.equal(view, torch.arange(base.numel()).view(base.shape)):
        return None  # several elements share storage: a view cannot be placed by storage
    return tag


def _locate(fed: Tensor, base: Tensor, by_value: bool = True) -> Tensor | None:
    """Where each index of ``fed`` stands in ``base`` (flat positions, ``fed``'s shape), when ``fed`` is ``base``
    itself, a view of part of it, or a copy of all of it in some axis order, possibly flipped or reshaped (the
    first arrangement whose values agree, the plain one first). None else."""
    if fed.device != base.device or fed.numel() == 0:
        return None
    order = torch.arange(base.numel()).view(base.shape)
    if fed.shape == base.shape and fed.stride() == base.stride() and fed.data_ptr() == base.data_ptr():
        return order
    try:
        shared = fed.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        shared = False
    if shared and fed.dtype == base.dtype:
        tag = _element_tags(base)
        if tag is not None:
            try:
                pos = tag.as_strided(fed.shape, fed.stride(), fed.storage_offset())
            except RuntimeError:
                return None
            return None if bool((pos < 0).any()) else pos.clone()
    if shared or not by_value or fed.numel() != base.numel() or base.dim() > 3:
        return None
    flips = [f for k in range(base.dim() + 1) for f in itertools.combinations(range(base.dim()), k)]
    found: list[Tensor] = []
    for perm in itertools.permutations(range(base.dim())):  # the identity first: a plain copy, .long(), .to()
        for flip in flips:  # then copies read backwards (a hand-made backward direction: ids.flip(1))
            moved = base.flip(flip) if flip else base
            if not torch.equal(moved.permute(perm).reshape(fed.shape).to(fed.dtype), fed):
                continue
            placed = (order.flip(flip) if flip else order).permute(perm).reshape(fed.shape)
            if not found and not flip and perm == tuple(range(base.dim())):
                return placed  # the input itself, copied: taken first
            if flip and any(_repeats(base, axis) for axis in flip):
                return (
                    None  # a reversed axis with two equal slices: which one is which, the values cannot say
                )
            if not any(torch.equal(placed, other) for other in found):
                found.append(placed)
    if len(found) == 1:
        return found[0]
    return None if found else _gathered(fed, base, order)  # two arrangements fit: not placed


def _repeats(base: Tensor, axis: int) -> bool:
    """Whether two slices of ``base`` along ``axis`` are equal."""
    n = int(base.shape[axis])
    rows = base.movedim(axis, 0).reshape(n, -1)
    return int(torch.unique(rows, dim=0).shape[0]) < n


def _gathered(fed: Tensor, base: Tensor, order: Tensor) -> Tensor | None:
    """Placement of a copy whose slices along one axis are the input's in another order (``words[perm]``, the
    sequences sorted by length before embedding them), when every slice of ``fed`` equals exactly one slice of
    ``base``: equal slices (two identical sequences) cannot say which is which, and are not placed."""
    if fed.shape != base.shape or base.dim() < 2:
        return None
    for axis in range(base.dim()):
        n = int(base.shape[axis])
        a = base.movedim(axis, 0).reshape(n, -1).to(fed.dtype)
        b = fed.movedim(axis, 0).reshape(n, -1)
        same = (b.unsqueeze(1) == a.unsqueeze(0)).all(-1)  # same[k, j]: fed slice k is base slice j
        if bool((same.sum(1) == 1).all()) and bool((same.sum(0) == 1).all()):
            return order.index_select(axis, same.to(torch.long).argmax(1))
    return None


def _shares_elements(a: Tensor, b: Tensor) -> bool:
    """Whether two tensors hold some of the same storage elements (the same tensor, or overlapping views)."""
    try:
        if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr() or a.device != b.device:
            return False
    except (RuntimeError, NotImplementedError):
        return False
    if a.element_size() != b.element_size():
        return True
    size = a.untyped_storage().nbytes() // a.element_size()
    mark = torch.zeros(size, dtype=torch.bool)
    mark.as_strided(a.shape, a.stride(), a.storage_offset()).fill_(True)
    return bool(mark.as_strided(b.shape, b.stride(), b.storage_offset()).any())


def _follows(fed: Tensor, base: Tensor) -> bool:
    """Whether ``fed`` is an elementwise function of ``base`` (same shape; equal indices in ``base`` are equal in
    ``fed``): ``ids`` itself, ``ids - 1``, ``ids.clamp(...)``, whose positions are the input's. A copy in another
    order (sorted, gathered) is not, unless by a coincidence of its values."""
    if fed.shape != base.shape or fed.device != base.device or fed.numel() == 0:
        return False
    values, inverse = torch.unique(base.flatten(), return_inverse=True)
    f = fed.flatten().to(torch.long)
    lo = torch.full((len(values),), torch.iinfo(torch.long).max, dtype=torch.long, device=f.device)
    hi = torch.full((len(values),), torch.iinfo(torch.long).min, dtype=torch.long, device=f.device)
    lo = lo.scatter_reduce(0, inverse, f, "amin")
    hi = hi.scatter_reduce(0, inverse, f, "amax")
    return torch.equal(lo, hi)


def _rearranged(fed: Tensor, base: Tensor) -> str:
    """What ``fed`` is of ``base`` when it holds base's sequences (rows along the last axis) in another order or
    arrangement, or a subset of them: "the sequences in another order", "a subset of the sequences"; "" when it
    is not (a copy in base's order, shifted or re-padded, or other ids altogether)."""
    if fed.device != base.device or fed.dim() == 0 or base.dim() == 0 or fed.shape[-1] != base.shape[-1]:
        return ""
    width = int(base.shape[-1])
    a = base.reshape(-1, width).to(fed.dtype)
    b = fed.reshape(-1, width)
    if b.shape[0] == 0 or (a.shape == b.shape and torch.equal(a, b)):
        return ""
    rows_a, counts_a = torch.unique(a, dim=0, return_counts=True)
    rows_b, counts_b = torch.unique(b, dim=0, return_counts=True)
    if a.shape == b.shape:
        if rows_a.shape == rows_b.shape and torch.equal(rows_a, rows_b) and torch.equal(counts_a, counts_b):
            return "the sequences in another order"
        return ""
    if b.shape[0] < a.shape[0] and bool((b.unsqueeze(1) == rows_a.unsqueeze(0)).all(-1).any(1).all()):
        return "a subset of the sequences"
    return ""
