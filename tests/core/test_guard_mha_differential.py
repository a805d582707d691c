"""Differential fuzz of ``guard`` on ``nn.MultiheadAttention`` against torch itself.

Every drawn call is first run on an unguarded copy of the layer (same weights): only calls torch runs count
as valid. Then

1. no false alarm: the guarded layer accepts every valid call, and its output and attention weights are
   bit-identical to torch's (``torch.equal``, NaN where torch has NaN; ``None`` where torch returns ``None``).
   Drawn: every constructor option (kdim/vdim, bias, add_bias_kv, add_zero_attn, batch_first, float32/64,
   bfloat16), batched and unbatched calls, self-attention (one tensor as query, key and value: torch's fast
   path in eval mode without grad), both masks in bool and float, 2-D and 3-D ``attn_mask``, ``is_causal``
   with its causal mask, ``need_weights``, ``average_attn_weights``, positional and keyword forms, train,
   eval, ``no_grad`` and ``inference_mode``, the layer alone or inside a container (with ``batch_axis``).
2. slips: a valid call with one mistake (the query's embed size, the key's or value's features, batch or
   source length, a mask of the wrong shape or dtype, a query/key/value of the wrong rank or dtype, every
   tensor in the other layout than batch_first): when torch refuses it, guard raises ``ShapeError`` naming
   the argument, and the guarded layer then still runs the valid call unchanged. When torch runs the slip,
   nothing is required. A slip that guard lets through to torch's own error is a *miss*: it does not fail
   the test but is collected and shown as a warning at the end of the module (with the smallest example of
   each kind), as are hints whose advice does not make the call run.

Runs:
    fast (part of the suite): a few dozen derandomized examples per test, a few CPU-seconds::

        pytest tests/core/test_guard_mha_differential.py -p no:randomly -q

    long (fresh random examples each run; failures print a ``@reproduce_failure`` blob)::

        RNNSHAPES_FUZZ_EXAMPLES=1500 pytest tests/core/test_guard_mha_differential.py -p no:randomly -q

    ``RNNSHAPES_FUZZ_EXAMPLES=N`` sets the examples per test; with it set, ``RNNSHAPES_FUZZ_DERANDOMIZE=1``
    keeps the examples fixed. ``RNNSHAPES_FUZZ_REPORT=path.json`` also writes the misses there.
"""

import contextlib
import copy
import json
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from rnnshapes import ShapeError, guard

torch.set_num_threads(1)  # a shared 2-core machine; the suite's conftest does the same per test

pytestmark = pytest.mark.filterwarnings(
    "ignore:Support for mismatched key_padding_mask and attn_mask is deprecated:UserWarning",
    "ignore:Converting mask without torch.bool dtype to bool:UserWarning",
)

_LONG = os.environ.get("RNNSHAPES_FUZZ_EXAMPLES")


def _settings(fast_examples: int) -> settings:
    examples = int(_LONG) if _LONG else fast_examples
    derandomize = not _LONG or os.environ.get("RNNSHAPES_FUZZ_DERANDOMIZE", "") == "1"
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


# ---------------------------------------------------------------------------------------------------------
# A drawn call
# ---------------------------------------------------------------------------------------------------------

SLOTS = ("query", "key", "value", "key_padding_mask", "attn_mask")
MODES = {
    "train": contextlib.nullcontext,
    "eval": contextlib.nullcontext,
    "no_grad": torch.no_grad,  # eval + no grad + self-attention: torch's fast path
    "inference": torch.inference_mode,
}


class Wrap(nn.Module):
    """The layer inside a container (guard then hooks the layer, and binds batch under batch_axis)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.layer(*args, **kwargs)


@dataclass
class Call:
    """One call of one nn.MultiheadAttention: its tensors by argument name, and how they are passed."""

    label: str
    mha: nn.MultiheadAttention
    tensors: dict[str, Tensor | None]
    flags: dict[str, Any]  # need_weights, average_attn_weights, is_causal (only those given)
    form: str  # positional | keywords | mixed
    mode: str  # a key of MODES
    where: str  # layer | wrapped | batch_axis
    heads: int = 1
    dims: dict[str, int] = field(default_factory=dict)  # batch (None unbatched), target, source

    def model(self, mha: nn.MultiheadAttention | None = None) -> nn.Module:
        """A fresh copy of the layer (same weights) in the call's mode, alone or in its container."""
        layer = copy.deepcopy(mha if mha is not None else self.mha)
        layer.train(self.mode == "train")
        return layer if self.where == "layer" else Wrap(layer)

    def guard_kw(self) -> dict[str, Any]:
        if self.where != "batch_axis":
            return {}
        return {"batch_axis": 0 if self.mha.batch_first else 1}

    def args(self, tensors: dict[str, Tensor | None] | None = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        t = self.tensors if tensors is None else tensors
        full: dict[str, Any] = {
            "query": t["query"],
            "key": t["key"],
            "value": t["value"],
            "key_padding_mask": t["key_padding_mask"],
            **{k: v for k, v in self.flags.items() if k == "need_weights"},
            "attn_mask": t["attn_mask"],
            **{k: v for k, v in self.flags.items() if k != "need_weights"},
        }
        if self.form == "keywords":
            return (), {k: v for k, v in full.items() if v is not None or k in ("query", "key", "value")}
        if self.form == "mixed":
            rest = {k: v for k, v in full.items() if k not in ("query", "key", "value") and v is not None}
            return (t["query"], t["key"], t["value"]), rest
        # positional: every argument up to the last one given, in forward's order
        order = ["query", "key", "value", "key_padding_mask", "need_weights", "attn_mask"]
        order += ["average_attn_weights", "is_causal"]
        defaults = {"need_weights": True, "average_attn_weights": True, "is_causal": False}
        given_ = [k for k in order if full.get(k) is not None]
        last = max(order.index(k) for k in given_)
        return tuple(full.get(k, defaults.get(k)) for k in order[: last + 1]), {}

    def __repr__(self) -> str:
        def d(t: Tensor | None) -> Any:
            return None if t is None else (tuple(t.shape), str(t.dtype).rpartition(".")[2])

        shared = " query is key" * (self.tensors["query"] is self.tensors["key"])
        shared += " key is value" * (self.tensors["key"] is self.tensors["value"])
        return (
            f"Call({self.label}, mode={self.mode}, where={self.where}, form={self.form}, flags={self.flags},"
            f"{shared} tensors={ {k: d(v) for k, v in self.tensors.items()} })"
        )


def _float_mask(gen: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype, draw: st.DrawFn) -> Tensor:
    """0 / -inf / random values (a fully masked row makes NaN, as in torch)."""
    kind = draw(st.sampled_from(["zeros", "neg-inf", "randn"]))
    if kind == "zeros":
        return torch.zeros(shape, dtype=dtype)
    if kind == "randn":
        return torch.randn(shape, generator=gen).to(dtype)
    m = torch.zeros(shape, dtype=dtype)
    return m.masked_fill_(torch.rand(shape, generator=gen) < 0.3, float("-inf"))


def _bool_mask(gen: torch.Generator, shape: tuple[int, ...]) -> Tensor:
    return torch.rand(shape, generator=gen) < 0.3


@st.composite
def calls(draw: st.DrawFn) -> Call:
    """A call of the documented forms (torch may still refuse a few, e.g. bfloat16 or mixed mask dtypes)."""
    fast = draw(st.integers(0, 3)) == 3  # the fast path's configuration: even heads, batch_first, ...
    heads = draw(st.sampled_from([2, 4] if fast else [1, 2, 3, 4]))
    embed = heads * draw(st.integers(1, 3))
    kdim = embed if fast or draw(st.booleans()) else draw(st.integers(1, 6))
    vdim = embed if fast or draw(st.booleans()) else draw(st.integers(1, 6))
    bias = fast or draw(st.booleans())
    add_bias_kv = not fast and draw(st.booleans())
    add_zero_attn = not fast and draw(st.booleans())
    batch_first = fast or draw(st.booleans())
    dtype = draw(st.sampled_from([torch.float32, torch.float32, torch.float64, torch.bfloat16]))
    mode = draw(st.sampled_from(["no_grad", "inference"] if fast else list(MODES)))
    where = draw(st.sampled_from(["layer", "wrapped", "batch_axis"]))

    batched = fast or draw(st.integers(0, 3)) < 3
    size = st.integers(0, 4) if draw(st.integers(0, 9)) == 9 else st.integers(1, 5)  # now and then empty
    n, tgt, src = draw(size), draw(size), draw(size)
    share = "none"
    if kdim == vdim and (fast or draw(st.booleans())):
        share = "kv"
        if kdim == embed and (fast or draw(st.booleans())):
            share, src = "qkv", tgt  # self-attention: one tensor

    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(
        embed, heads, dropout=0.0, bias=bias, add_bias_kv=add_bias_kv, add_zero_attn=add_zero_attn,
        kdim=kdim, vdim=vdim, batch_first=batch_first, dtype=dtype,
    )  # fmt: skip

    def seq(steps: int, features: int) -> Tensor:
        if not batched:
            shape: tuple[int, ...] = (steps, features)
        else:
            shape = (n, steps, features) if batch_first else (steps, n, features)
        return torch.randn(shape, generator=gen).to(dtype)

    query = seq(tgt, embed)
    key = query if share == "qkv" else seq(src, kdim)
    value = key if share != "none" else seq(src, vdim)

    mask_dtype = draw(st.sampled_from([dtype, dtype, torch.float32, torch.float64]))
    kpm_kind = draw(st.sampled_from([None, "bool", "float"] if not fast else [None, "bool"]))
    kpm_shape = (n, src) if batched else (src,)
    kpm = None
    if kpm_kind == "bool":
        kpm = _bool_mask(gen, kpm_shape)
    elif kpm_kind == "float":
        kpm = _float_mask(gen, kpm_shape, mask_dtype, draw)

    attn_kind = draw(st.sampled_from([None, "bool", "float"] if not fast else [None, "bool"]))
    attn = None
    flags: dict[str, Any] = {}
    if attn_kind is not None:
        per_head = draw(st.booleans())
        shape3 = ((n if batched else 1) * heads, tgt, src)
        causal = draw(st.booleans())
        if causal:  # is_causal with the mask it stands for (upper triangle masked)
            upper = torch.ones(tgt, src, dtype=torch.bool).triu(1)
            if per_head:
                upper = upper.expand(shape3).contiguous()
            attn = (
                upper
                if attn_kind == "bool"
                else torch.zeros(upper.shape, dtype=mask_dtype).masked_fill_(upper, float("-inf"))
            )
            flags["is_causal"] = True
        else:
            shape = shape3 if per_head else (tgt, src)
            attn = (
                _bool_mask(gen, shape) if attn_kind == "bool" else _float_mask(gen, shape, mask_dtype, draw)
            )
    for name in ("need_weights", "average_attn_weights"):
        if draw(st.booleans()):
            flags[name] = draw(st.booleans())
    if "is_causal" not in flags and draw(st.integers(0, 5)) == 0:
        flags["is_causal"] = False
    form = draw(st.sampled_from(["positional", "keywords", "mixed"]))

    label = (
        f"MultiheadAttention({embed}, {heads}, kdim={kdim}, vdim={vdim}, bias={bias}, "
        f"add_bias_kv={add_bias_kv}, add_zero_attn={add_zero_attn}, batch_first={batch_first}, {dtype})"
    )
    tensors: dict[str, Tensor | None] = {
        "query": query, "key": key, "value": value, "key_padding_mask": kpm, "attn_mask": attn,
    }  # fmt: skip
    return Call(
        label, mha, tensors, flags, form, mode, where, heads,
        {"batch": n if batched else -1, "target": tgt, "source": src},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Running a call: torch alone, and guarded
# ---------------------------------------------------------------------------------------------------------


def _run_torch(call: Call, tensors: dict[str, Tensor | None] | None = None, **over: Any) -> Any:
    """The unguarded layer (a fresh copy with the same weights) on the call."""
    c = replace(call, **over) if over else call
    args, kwargs = c.args(tensors)
    model = c.model()
    with MODES[c.mode]():
        return model(*args, **kwargs)


def _run_guarded(call: Call, tensors: dict[str, Tensor | None] | None = None) -> Any:
    args, kwargs = call.args(tensors)
    model = call.model()
    with guard(model, **call.guard_kw()), MODES[call.mode]():
        return model(*args, **kwargs)


def _same(got: Any, want: Any, path: str) -> None:
    if want is None:
        assert got is None, f"{path}: torch returns None, guarded returns {type(got).__name__}"
        return
    assert isinstance(got, Tensor), path
    assert got.dtype == want.dtype and got.shape == want.shape, (path, got.shape, want.shape, got.dtype)
    nan = want.isnan()
    assert torch.equal(got.isnan(), nan), f"{path}: NaN elsewhere than torch's"
    assert torch.equal(got[~nan], want[~nan]), f"{path} differs from torch's"


def _assert_same(got: Any, want: Any) -> None:
    assert isinstance(got, tuple) and len(got) == 2, type(got)
    _same(got[0], want[0], "output")
    _same(got[1], want[1], "weights")


def _torch_error(call: Call, tensors: dict[str, Tensor | None] | None = None, **over: Any) -> str | None:
    """torch's error on the call (its first line), or None when torch runs it."""
    try:
        _run_torch(call, tensors, **over)
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


# ---------------------------------------------------------------------------------------------------------
# Part 1: every call torch runs passes, unchanged
# ---------------------------------------------------------------------------------------------------------


def _check_no_false_alarm(call: Call) -> None:
    note(repr(call))
    try:
        want = _run_torch(call)
    except Exception as e:
        note(f"torch refuses it: {type(e).__name__}: {e}")
        event("torch refuses the drawn call")
        assume(False)  # not a valid call: nothing to compare
    event(f"valid call, mode={call.mode}, batched={call.dims['batch'] >= 0}")
    got = _run_guarded(call)  # a ShapeError here is a false alarm
    _assert_same(got, want)


@_settings(80)
@given(calls())
def test_every_attention_call_torch_runs_passes_unchanged(call: Call) -> None:
    _check_no_false_alarm(call)


# ---------------------------------------------------------------------------------------------------------
# Part 2: slips torch refuses are ShapeErrors naming the argument
# ---------------------------------------------------------------------------------------------------------

# what guard let through (slip kind -> the smallest example), and hints whose advice did not make it run
MISSES: dict[str, dict[str, Any]] = {}
HINT_PROBLEMS: dict[str, dict[str, Any]] = {}


def _size(tensors: dict[str, Tensor | None]) -> int:
    return sum(t.numel() for t in tensors.values() if t is not None)


def _record(book: dict[str, dict[str, Any]], key: str, entry: dict[str, Any], size: int) -> None:
    old = book.get(key)
    if old is None or size < old["size"]:
        book[key] = {**entry, "size": size, "count": (old or {}).get("count", 0) + 1}
    else:
        old["count"] += 1


@dataclass
class Slip:
    kind: str
    what: str
    tensors: dict[str, Tensor | None]
    names: tuple[str, ...]  # the arguments a ShapeError may name


def _other(draw: st.DrawFn, size: int, low: int = 0) -> int:
    return draw(st.sampled_from(sorted({max(size - 1, low), size + 1, size + 2} - {size})))


def _resized(t: Tensor, axis: int, size: int) -> Tensor:
    shape = list(t.shape)
    shape[axis] = size
    return torch.randn(shape).to(t.dtype) if t.is_floating_point() else torch.zeros(shape, dtype=t.dtype)


@st.composite
def slips(draw: st.DrawFn) -> tuple[Call, Slip]:
    call = draw(calls())
    t = dict(call.tensors)
    q, k, v = t["query"], t["key"], t["value"]
    assert q is not None and k is not None and v is not None
    batched = q.dim() == 3
    bf = call.mha.batch_first
    b_ax, s_ax = (0, 1) if bf else (1, 0)  # the batch and step axes of a batched tensor
    if not batched:
        s_ax = 0
    n, tgt, src, heads = call.dims["batch"], call.dims["target"], call.dims["source"], call.heads
    kinds = ["query-embed", "key-features", "value-features", "source", "kpm-shape", "attn-shape", "dtype"]
    kinds += ["rank"] + (["batch", "layout"] if batched else [])
    kind = draw(st.sampled_from(kinds))

    def mask_like(shape: tuple[int, ...], like: Tensor | None) -> Tensor:
        if like is not None and like.is_floating_point():
            return torch.zeros(shape, dtype=like.dtype)
        return torch.zeros(shape, dtype=torch.bool)

    if kind == "query-embed":
        t["query"] = _resized(q, -1, _other(draw, q.shape[-1], 1))
        what, names = f"query features {q.shape[-1]} -> {t['query'].shape[-1]}", ("query",)
    elif kind in ("key-features", "value-features"):
        name = kind.partition("-")[0]
        old = t[name]
        assert old is not None
        t[name] = _resized(old, -1, _other(draw, old.shape[-1], 1))
        what, names = f"{name} features {old.shape[-1]} -> {t[name].shape[-1]}", (name,)
    elif kind == "batch":  # key and/or value with another batch than the query
        which = draw(st.sampled_from(["key", "value", "both"]))
        new_n = _other(draw, n)
        for name in ("key", "value") if which == "both" else (which,):
            old = t[name]
            assert old is not None
            t[name] = _resized(old, b_ax, new_n)
        if which == "both" and k is v:
            t["value"] = t["key"]
        what, names = f"{which} batch {n} -> {new_n}", ("key",) if which != "value" else ("value",)
    elif kind == "source":  # key or value with another number of steps
        which = draw(st.sampled_from(["key", "value"]))
        old = t[which]
        assert old is not None
        t[which] = _resized(old, s_ax, _other(draw, old.shape[s_ax]))
        what, names = f"{which} steps {old.shape[s_ax]} -> {t[which].shape[s_ax]}", (which,)
    elif kind == "kpm-shape":
        if batched:
            options = [(src, n), (n, src + 1), (n + 1, src), (src,), (n, tgt), (1, src), (n, 1, src)]
        else:
            options = [(src + 1,), (1, src), (tgt,), (src, 1)]
        shape = draw(st.sampled_from([s for s in options if s != ((n, src) if batched else (src,))]))
        t["key_padding_mask"] = mask_like(shape, t["key_padding_mask"])
        what, names = f"key_padding_mask shape {shape}", ("key_padding_mask",)
    elif kind == "attn-shape":
        nb = n if batched else 1
        nh = nb * heads
        options = [(src, tgt), (tgt, tgt), (tgt, src + 1), (nh, src, tgt), (nh + 1, tgt, src), (src,)]
        options += [(1, tgt, src), (nb, tgt, src), (nb, heads, tgt, src), (heads, tgt, src)]
        good = {(tgt, src), (nh, tgt, src)}
        shape = draw(st.sampled_from([s for s in options if s not in good]))
        t["attn_mask"] = mask_like(shape, t["attn_mask"])
        what, names = f"attn_mask shape {shape}", ("attn_mask",)
    elif kind == "layout":  # every tensor in the other layout than batch_first
        t["query"] = q.transpose(0, 1)
        t["key"] = t["query"] if k is q else k.transpose(0, 1)
        t["value"] = t["key"] if v is k else v.transpose(0, 1)
        what, names = f"query, key, value in the other layout than batch_first={bf}", SLOTS
    elif kind == "dtype":
        name = draw(st.sampled_from(SLOTS))
        old = t[name]
        if name in ("key_padding_mask", "attn_mask"):
            shape = old.shape if old is not None else ((n, src) if batched else (src,))
            if name == "attn_mask" and old is None:
                shape = (tgt, src)
            dtype = draw(st.sampled_from([torch.int64, torch.int32, torch.uint8, torch.float16]))
            t[name] = torch.zeros(shape, dtype=dtype)
        else:
            assert old is not None
            dtype = draw(
                st.sampled_from([d for d in (torch.float32, torch.float64, torch.int64) if d != old.dtype])
            )
            t[name] = old.to(dtype)
            if name == "key" and v is k and draw(st.booleans()):
                t["value"] = t["key"]
        what, names = f"{name} dtype -> {dtype}", (name,)
    else:  # rank: one axis more or fewer on one of query, key, value
        name = draw(st.sampled_from(["query", "key", "value"]))
        old = t[name]
        assert old is not None
        if old.shape[0] > 0 and draw(st.booleans()):
            t[name] = old.select(0, 0).clone()
        else:
            t[name] = old.unsqueeze(0).clone()
        what, names = f"{name} rank {old.dim()} -> {t[name].dim()}", ("query", "key", "value")
    return call, Slip(kind, what, t, names)


def _names_argument(message: str, names: tuple[str, ...]) -> bool:
    """The ShapeError names one of ``names`` as the wrong argument, or as where a size it disagrees with
    was bound from."""
    bound = next((line for line in message.splitlines() if line.lstrip().startswith("bound:")), "")
    for name in names:
        if f"argument '{name}'" in message or re.search(rf"from {name} axis", bound):
            return True
    return False


def _check_hint(call: Call, slip: Slip, message: str) -> None:
    """Collect hints whose advice does not make the call run (what they say is checked, not required)."""
    t = slip.tensors
    if "[mha-layout]" in message:
        fixes: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        named = re.search(r"argument '(\w+)'", message)
        qkv = {}
        for name in ("query", "key", "value"):
            x = t[name]
            assert x is not None
            qkv[name] = x.transpose(0, 1) if x.dim() == 3 else x
        fixes.append(("transpose query, key and value", {**t, **qkv}, {}))
        if named and named.group(1) in qkv:
            fixes.append((f"transpose {named.group(1)}", {**t, named.group(1): qkv[named.group(1)]}, {}))
        hinted = re.findall(r"(key|value)\.transpose\(0, 1\)", message.partition("[mha-layout]")[2])
        if hinted:  # the key/value form of the hint names exactly what to transpose
            fixes.append((f"transpose {' and '.join(hinted)}", {**t, **{n: qkv[n] for n in hinted}}, {}))
        flipped = copy.deepcopy(call.mha)
        flipped.batch_first = not flipped.batch_first
        fixes.append(("batch_first flipped", t, {"mha": flipped}))
        if all(_torch_error(call, tensors, **over) is not None for _, tensors, over in fixes):
            key = f"[mha-layout] for slip {slip.kind}"
            entry = {
                "call": repr(call),
                "slip": slip.what,
                "message": message,
                "tried": [f[0] for f in fixes],
            }
            _record(HINT_PROBLEMS, key, entry, _size(t))
    mask = t["attn_mask"]
    nb, tgt, src = max(call.dims["batch"], 1), call.dims["target"], call.dims["source"]
    if (
        "repeat_interleave(heads, dim=0)" in message
        and "argument 'attn_mask'" in message
        and mask is not None
        and tuple(mask.shape) == (nb, tgt, src)
        and mask.numel() > 0  # torch's fast path cannot view an empty 3-D mask per head at all
        and _torch_error(call, {**t, "attn_mask": mask.repeat_interleave(call.heads, dim=0)}) is not None
    ):
        entry = {"call": repr(call), "slip": slip.what, "message": message}
        _record(HINT_PROBLEMS, "[attention-mask] repeat_interleave does not fix it", entry, _size(t))
    hint = message.partition("[attention-mask]")[2]
    if hint and call.dims["batch"] < 0 and ("(batch, source)" in hint or "batch*heads" in hint):
        # the hint states the batched shapes: (batch, source) and (batch*heads, target, source)
        key = "[attention-mask] on an unbatched call"
        _record(HINT_PROBLEMS, key, {"call": repr(call), "slip": slip.what, "message": message}, _size(t))


def _check_slip(call: Call, slip: Slip) -> None:
    note(f"{call!r}\nslip: {slip.what}")
    try:
        want = _run_torch(call)
    except Exception:
        assume(False)  # the call without the slip is not valid
    err = _torch_error(call, slip.tensors)
    if err is None:
        event(f"slip {slip.kind}: torch runs it")
        return  # torch runs it: guard may accept it
    note(f"torch: {err}")
    args, kwargs = call.args(slip.tensors)
    model = call.model()
    with guard(model, **call.guard_kw()), MODES[call.mode]():
        try:
            model(*args, **kwargs)
        except ShapeError as e:
            message = str(e)
        except Exception as e:  # torch's own error came through: a miss, collected and reported
            guard_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            entry = {"call": repr(call), "slip": slip.what, "torch": err, "guard": guard_error}
            event(f"slip {slip.kind}: MISS")
            _record(
                MISSES, f"{slip.kind}: {err.partition(':')[0]} {_shape_free(err)}", entry, _size(slip.tensors)
            )
            return
        else:  # pragma: no cover - the same call torch refuses
            raise AssertionError(f"torch refuses ({err}) but the guarded layer ran it")
        event(f"slip {slip.kind}: ShapeError")
        assert _names_argument(message, slip.names), f"the ShapeError names none of {slip.names}:\n{message}"
        _check_hint(call, slip, message)
        # a refused call leaves nothing behind: the valid call still passes, with torch's results
        args, kwargs = call.args()
        _assert_same(model(*args, **kwargs), want)


def _shape_free(message: str) -> str:
    """torch's message without its numbers: one entry per kind of error."""
    return re.sub(r"\d+", "N", message.partition(": ")[2])[:90]


@_settings(80)
@given(slips())
def test_every_slip_torch_refuses_is_a_shape_error_naming_the_argument(drawn: tuple[Call, Slip]) -> None:
    _check_slip(*drawn)


@pytest.fixture(scope="module", autouse=True)
def _report_misses() -> Any:
    """At the end of a long run (``RNNSHAPES_FUZZ_EXAMPLES``) or one asked to report: the misses and the hint
    problems, one warning each (and a JSON file). The suite's short run stays quiet: the known misses are
    listed on docs/shapes.md ("What guard does not check")."""
    yield
    report = {"misses": MISSES, "hints": HINT_PROBLEMS}
    path = os.environ.get("RNNSHAPES_FUZZ_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=1, default=str)
    if not (path or os.environ.get("RNNSHAPES_FUZZ_EXAMPLES")):
        return
    for book, what in ((MISSES, "guard let torch's own error through"), (HINT_PROBLEMS, "hint")):
        for key, entry in book.items():
            warnings.warn(f"{what} ({entry['count']}x) {key}: {json.dumps(entry, default=str)}", stacklevel=1)


# ---------------------------------------------------------------------------------------------------------
# Fixed cases: what the fuzz (and probing around it) found, each a false alarm or a wrong hint until fixed.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")
@pytest.mark.parametrize("need_weights", [False, True])
def test_nested_tensor_self_attention_in_the_fast_path_passes(need_weights: bool) -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.nested.nested_tensor([torch.randn(3, 8), torch.randn(5, 8)])
    with torch.no_grad():
        want, want_w = copy.deepcopy(mha)(x, x, x, need_weights=need_weights)
        with guard(mha):
            got, got_w = mha(x, x, x, need_weights=need_weights)
    assert got.is_nested and want.is_nested
    assert all(torch.equal(g, w) for g, w in zip(got.unbind(), want.unbind(), strict=True))
    assert (got_w is None and want_w is None) or torch.equal(got_w, want_w)


def _message(mha: nn.MultiheadAttention, *args: Tensor, **kwargs: Any) -> str:
    with pytest.raises((RuntimeError, AssertionError)):  # torch refuses the call
        copy.deepcopy(mha)(*args, **kwargs)
    with guard(mha), pytest.raises(ShapeError) as info:
        mha(*args, **kwargs)
    return str(info.value)


def test_an_unbatched_call_gets_no_layout_hint() -> None:
    mha = nn.MultiheadAttention(8, 2)
    message = _message(mha, torch.randn(5, 4), torch.randn(7, 8), torch.randn(7, 8))
    assert "argument 'query'" in message and "[mha-layout]" not in message


def test_the_mask_hint_of_an_unbatched_call_gives_the_unbatched_shapes() -> None:
    mha = nn.MultiheadAttention(8, 2)
    kpm = torch.zeros(1, 7, dtype=torch.bool)
    message = _message(mha, torch.randn(5, 8), torch.randn(7, 8), torch.randn(7, 8), key_padding_mask=kpm)
    assert "argument 'key_padding_mask'" in message and "(batch, source)" not in message


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("flipped", [("key", "value"), ("value",)])
def test_key_and_value_alone_laid_out_the_other_way_are_named_and_the_fix_runs(
    batch_first: bool, flipped: tuple[str, ...]
) -> None:
    # a time-first decoder's h_n (1, batch, embed) attending a batch-first encoder's outputs (batch, time, embed)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first)
    batch, source = 3, 6
    good = {"query": torch.randn(1, batch, 16), "key": torch.randn(source, batch, 16)}
    good["value"] = torch.randn(source, batch, 16)
    if batch_first:
        good = {k: v.transpose(0, 1) for k, v in good.items()}
    call = {k: v.transpose(0, 1) if k in flipped else v for k, v in good.items()}
    message = _message(mha, call["query"], call["key"], call["value"])
    fix = " and ".join(f"{n}.transpose(0, 1)" for n in flipped)
    assert f"The query fits, but {' and '.join(flipped)} look" in message and f"pass {fix}." in message
    with guard(mha):
        assert mha(*(v.transpose(0, 1) if k in flipped else v for k, v in call.items()))[0].shape == (
            good["query"].shape
        )
