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

The reruns call a copy of the model that shares no tensor with it (up to ``COPY_BYTES`` of tensors and
``COPY_OBJECTS`` other objects; a larger model is not rerun), so nothing a forward changes in the model (a hidden
state kept between calls, a counter, a cached mask, a memory bank written through ``.data``, a buffer written
only on short calls) is left changed, and each rerun gets a copy of every input (a cache it appends to, a state it
copies into); torch's, Python's and numpy's random number generators, and those kept as globals of the modules
defining the model's classes, are put back after them and their warnings are not shown. What a forward does
outside the model (a print, a log line, a module-level counter, a hook it puts on a tensor, as Grad-CAM does) sees
the extra calls and backward passes, as it sees a number of backward passes that depends on ``chunk_size``.
Reruns are not tried where their effects could reach beyond the model or the copy would not be the model: a
model that is not an ``nn.Module`` or is called through ``call=``, one with module hooks (which may record what
they see; ``guard``'s are fine), a TorchScript or ``torch.compile``'d module, a model whose call writes into its
parameters or buffers (in place, or by assigning ``.data``), one that cannot be copied, or one whose copy would
still share something that can change with it (a weakref to its owner, a closure over ``self``, a mutable class
attribute or default argument).
"""

import copy
import enum
import math
import random
import sys
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ._calls import tensor_leaves
from ._influence import VJPRows, axis_columns, every_row

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
            return _bounds(n - last, fit - 1) + [(n - last, n)], True
        fit += 1
    return _bounds(n, k), False


@contextmanager
def _rng_kept(device: torch.device, model: nn.Module) -> Iterator[None]:
    """torch's generators (the CPU's and ``device``'s), Python's and numpy's (when loaded), and the generators
    the model's modules keep at module level (``_module_generators``) put back after."""
    devices = [device] if device.type != "cpu" else []
    numpy = sys.modules.get("numpy")
    python_state = random.getstate()
    numpy_state = numpy.random.get_state() if numpy is not None else None
    kept = [(g, g.get_state()) for g in _module_generators(model, torch.Generator)]
    kept_random = [(g, g.getstate()) for g in _module_generators(model, random.Random)]
    kept_numpy = (
        [(g, g.bit_generator.state) for g in _module_generators(model, numpy.random.Generator)]
        if numpy
        else []
    )
    kept_legacy = (
        [(g, g.get_state()) for g in _module_generators(model, numpy.random.RandomState)] if numpy else []
    )
    try:
        with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
            yield
    finally:
        random.setstate(python_state)
        if numpy is not None:
            numpy.random.set_state(numpy_state)
        for g, state in kept:
            g.set_state(state)
        for r, python in kept_random:
            r.setstate(python)
        for n, bits in kept_numpy:
            n.bit_generator.state = bits
        for legacy, state in kept_legacy:
            legacy.set_state(state)


def _module_generators(model: nn.Module, kind: type) -> list[Any]:
    """The random number generators of type ``kind`` (a ``torch.Generator``, a ``random.Random``, a numpy
    ``Generator`` or ``RandomState``) kept as globals of the Python modules that define the model's classes (torch's excepted): a
    model's own noise source, which a copy of the model shares."""
    found: dict[int, Any] = {}
    for name in {type(m).__module__ for m in model.modules()}:
        if name.startswith("torch.") or (where := sys.modules.get(name)) is None:
            continue
        for value in list(vars(where).values()):
            if isinstance(value, kind) and value is not random._inst:  # noqa: SLF001  # random's own: kept above
                found[id(value)] = value
    return list(found.values())


def _unsafe(model: Any) -> str | None:
    """Why reruns could reach beyond the model, or a copy would not be the model; None when neither."""
    if not isinstance(model, nn.Module):
        return "the model is not an nn.Module"
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    if any(getattr(nn.modules.module, f"_global{name}", None) for name in hooks):
        return "global module hooks"
    for m in model.modules():
        if any(not _guards(h) for name in hooks for h in getattr(m, name, {}).values()):
            return "the model has hooks, which may record what they see"
        if isinstance(m, torch.jit.ScriptModule) or hasattr(m, "_orig_mod"):
            return "TorchScript or torch.compile"
        if hasattr(vars(m).get("forward", type(m).forward), "_torchdynamo_orig_callable"):
            return "a compiled forward"
    for cls in dict.fromkeys(type(m) for m in model.modules()):  # each class once, in order
        if (shared := _class_state(cls)) is not None:
            return shared
    return None


def _class_state(cls: type) -> str | None:
    """Where a module's class (torch's own excepted) can keep state that every copy shares: a mutable class
    attribute (``_cache = {}``) or a mutable default argument (``def forward(self, x, state={})``)."""
    for klass in cls.__mro__:
        if klass.__module__.startswith("torch.") or klass is object:
            continue
        for name, value in vars(klass).items():
            if name.startswith("__") and name.endswith("__"):
                continue
            fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if isinstance(fn, types.FunctionType):
                defaults = [*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()]
                if not all(_immutable(d) for d in defaults):
                    return f"{klass.__name__}.{name} has a mutable default argument, which every copy shares"
            elif not isinstance(value, property) and not _immutable(value):
                return f"{klass.__name__}.{name} is a mutable class attribute, which every copy shares"
    return None


def _guards(hook: Any) -> bool:
    """rnnshapes.guard's own hooks check shapes and record nothing."""
    return bool(getattr(type(hook), "__module__", "").startswith("rnnshapes.core._guard"))


COPY_BYTES = 64 * 2**20
"""The most bytes of tensors (parameters, buffers, tensors kept as plain attributes) the reruns copy: a larger
model is not rerun (its rows run on the whole sequence). The copy shares nothing with the model, so nothing a
rerun writes (in place, through ``.data``, only on short calls) reaches it."""

COPY_OBJECTS = 10_000
"""The most other objects (attributes, list items, dict entries: a vocabulary kept on the model) the reruns
copy: copying more would cost more than the reruns save on a check of a few hundred steps."""


def tensor_versions(model: Any) -> list[tuple[Tensor, int, int]]:
    """The version counters and data pointers of the model's parameters and buffers: what an in-place write
    bumps, and what assigning ``.data`` changes."""
    if not isinstance(model, nn.Module):
        return []
    found = []
    for t in [*model.parameters(), *model.buffers()]:
        try:
            found.append((t, t._version, t.data_ptr()))
        except RuntimeError:  # inference tensors keep no version counter
            continue
    return found


def written(versions: list[tuple[Tensor, int, int]]) -> bool:
    """Whether a call since ``tensor_versions`` wrote into a parameter or buffer (in place, or assigned its
    ``.data``): the reruns' copy would not start from what the call saw. A write through ``.data`` in place bumps
    nothing; made by a rerun, it reaches only the copy (``_twin``)."""
    return any(t._version != v or t.data_ptr() != ptr for t, v, ptr in versions)


def _twin(model: nn.Module) -> tuple[nn.Module | None, str]:
    """A copy of the model that shares nothing with it that can change (tensors included), within
    ``COPY_BYTES`` and ``COPY_OBJECTS``; else None and why."""
    size, objects = _copy_cost(model)
    if size > COPY_BYTES:
        return (
            None,
            f"its tensors ({size / 2**20:.0f} MiB) are more than the reruns copy ({COPY_BYTES // 2**20} MiB)",
        )
    if objects > COPY_OBJECTS:
        return None, (
            f"its attributes hold more than {COPY_OBJECTS:,} objects (a vocabulary?), more than the reruns copy"
        )
    try:
        twin = copy.deepcopy(model)
    except Exception as e:  # noqa: BLE001  # a model holding what cannot be copied: no reruns
        return None, f"the model could not be copied ({type(e).__name__})"
    for original, copied in zip(model.modules(), twin.modules(), strict=False):
        for key, value in vars(original).items():
            if key.startswith("_") and isinstance(
                value, dict
            ):  # nn.Module's own dicts: copied, items checked
                items = list(value.values())
                again = list(getattr(copied, key, {}).values())
            else:
                items, again = [value], [vars(copied).get(key)]
            for item, other in zip(items, again, strict=False):
                if item is other and not _immutable(item):
                    return None, f"its copy would share {type(item).__name__} {key!r} with it"
    return twin, ""


def _copy_cost(model: nn.Module) -> tuple[int, int]:
    """The bytes of the tensors' storages and the number of other objects that ``copy.deepcopy(model)`` copies
    (counting stops past ``COPY_OBJECTS``)."""
    storages: dict[int, int] = {}
    seen: set[int] = set()
    objects = 0
    stack: list[Any] = [model]
    while stack and objects <= COPY_OBJECTS:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, Tensor):
            if _has_storage(x):
                storage = x.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
            continue
        objects += 1
        if isinstance(x, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)):
            continue  # deepcopy shares these
        if isinstance(x, Mapping):
            stack.extend([*x.keys(), *x.values()])
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)
        elif hasattr(x, "__dict__"):
            stack.extend(vars(x).values())
    return sum(storages.values()), objects


def _has_storage(t: Tensor) -> bool:
    try:
        t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse and other layouts without one storage
        return False
    return True


def _immutable(x: Any) -> bool:
    """What a copy may share: values that cannot change (a closure or a weakref can reach the model)."""
    if x is None or isinstance(x, (bool, int, float, complex, str, bytes, type, enum.Enum, types.ModuleType)):
        return True
    if isinstance(x, (torch.dtype, torch.device, torch.layout, torch.memory_format, torch.Size)):
        return True
    if isinstance(x, types.FunctionType):
        return x.__closure__ is None
    if isinstance(x, (types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType)):
        return True
    if isinstance(x, (tuple, frozenset)):
        return all(_immutable(v) for v in x)
    return False


def causal_rows(engine: VJPRows, n: int, prefix: Prefix | None) -> tuple[Tensor, str]:
    """The ``n x n`` causal matrix; chunks of rows on reruns of the model where ``prefix`` allows (see the
    module's docstring). Returns the matrix and a note for ``how``."""
    chunks = plan(n, engine.chunk_size) if RERUN and prefix is not None and engine.batched else None
    if (
        prefix is None or chunks is None or not chunks[1]
    ):  # not chunks[1]: groups would need passes of their own
        return every_row(engine, n), ""
    bounds = chunks[0]
    twin, refused = (None, prefix.refused) if prefix.refused else _twin(prefix.model)
    if twin is None:
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
    with _rng_kept(engine.leaf.device, twin):
        for g, (a, b) in zip(group, bounds, strict=False):
            found = _rerun_chunk(engine, prefix, twin, g, a, b, n, axis)
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
    refused = refused or _unsafe(model) or ""
    for i, other in enumerate(args):
        if i != position and (_holds_packed(other) or any(n in t.shape for _, t in tensor_leaves(other))):
            refused = refused or f"input {i} may hold the steps too"

    def rerun(twin: nn.Module, b: int) -> tuple[Tensor, Tensor]:
        # every input copied, as a model may write into its inputs (a state, a cache the forward appends to)
        memo: dict[int, Any] = {id(x): x}
        for _, t in tensor_leaves(args):
            memo.setdefault(id(t), t.detach().clone().requires_grad_(t.requires_grad))
        cut = list(copy.deepcopy(args, memo))
        cut[position] = x.narrow(caller_axis, 0, b).clone()
        return again(twin, tuple(cut))

    return Prefix(rerun, leaf_axis, weights, model, refused)


def _holds_packed(x: Any) -> bool:
    if isinstance(x, PackedSequence):
        return True
    if isinstance(x, Mapping):
        return any(_holds_packed(v) for v in x.values())
    return isinstance(x, (tuple, list)) and any(_holds_packed(v) for v in x)
