"""Hints kept beside ``_messages`` (private, used by it): those that depend on the kind of module called
(nn.MultiheadAttention's layouts and masks, a module running in an nn.DataParallel replica), and the items of a
list or tuple argument."""

from typing import Any, cast

from torch import Tensor

from ._specs import NAMED, Context, _Mismatch


def _attention_hints(arg: str, ctx: Context, m: _Mismatch, value: Any) -> list[str]:
    bf = bool(getattr(ctx.module, "batch_first", False))
    call = ctx.call_args or {}
    query = call.get("query") if isinstance(call.get("query"), Tensor) else None
    if query is not None and query.dim() == 2:  # one unbatched sequence: no batch axis, no layout to flip
        if arg in ("key_padding_mask", "attn_mask"):
            return [
                "[attention-mask] for one unbatched sequence (query (target, embed)), key_padding_mask is "
                "(source,), True (or -inf) where a key is padding; attn_mask is (target, source), or (heads, "
                "target, source) per head."
            ]
        return []
    q, kv = (
        ("(batch, target, embed)", "(batch, source, embed)")
        if bf
        else ("(target, batch, embed)", "(source, batch, embed)")
    )
    if arg in ("key_padding_mask", "attn_mask"):
        return [
            "[attention-mask] key_padding_mask is (batch, source), True (or -inf) where a key is padding; "
            "attn_mask is (target, source) for every sequence, or (batch*heads, target, source) per sequence and "
            "head. A (batch, target, source) mask is repeated per head: mask.repeat_interleave(heads, dim=0)."
        ]
    if arg not in ("query", "key", "value") or m.axis not in (0, 1):
        return []
    tensors = [call.get(n) for n in ("query", "key", "value")]
    if arg != "query" and all(isinstance(t, Tensor) and t.dim() == 3 for t in tensors):
        # read the other way round, the call must fit: one batch for query, key and value, one source length
        # for key and value (a true batch or source mismatch does not fit either way: no layout advice then)
        other = 1 if bf else 0
        q_, k_, v_ = cast(list[Tensor], tensors)
        batch, target, source = q_.shape[other], q_.shape[1 - other], k_.shape[1 - other]
        fits = batch == k_.shape[other] == v_.shape[other] and source == v_.shape[1 - other]
        pad, attn = call.get("key_padding_mask"), call.get("attn_mask")
        if isinstance(pad, Tensor) and tuple(pad.shape) != (batch, source):
            fits = False  # the masks, read with the other layout's sizes, must fit too
        if isinstance(attn, Tensor) and tuple(attn.shape[-2:]) != (target, source):
            fits = False
        if 0 in (*q_.shape[:2], *k_.shape[:2], *v_.shape[:2]):  # an empty axis is no layout question either
            return []
        if not fits:
            return _kv_layout_hint(bf, q, kv, q_, k_, v_, pad, attn)
    return [
        f"[mha-layout] this nn.MultiheadAttention has batch_first={bf}: the query is {q} and key and value "
        f"are {kv}. Tensors laid out the other way need .transpose(0, 1), or build the layer with "
        f"batch_first={not bf}."
    ]


def _kv_layout_hint(
    bf: bool, q: str, kv: str, query: Tensor, key: Tensor, value: Tensor, pad: Any, attn: Any
) -> list[str]:
    """The query fits the layer's layout, and the call fits when key and/or value alone are read the other way
    round (a batch-first encoder's outputs attended by a time-first decoder's state): name which to transpose."""
    b_ax = 0 if bf else 1
    batch, target = query.shape[b_ax], query.shape[1 - b_ax]

    def read(t: Tensor, flip: bool) -> tuple[int, int]:  # (batch, source) of t, read as laid out or flipped
        return (t.shape[1 - b_ax], t.shape[b_ax]) if flip else (t.shape[b_ax], t.shape[1 - b_ax])

    for flips in ((True, True), (True, False), (False, True)):
        (kb, ks), (vb, vs) = read(key, flips[0]), read(value, flips[1])
        fits = kb == vb == batch and ks == vs
        if isinstance(pad, Tensor) and tuple(pad.shape) != (batch, ks):
            fits = False
        if isinstance(attn, Tensor) and tuple(attn.shape[-2:]) != (target, ks):
            fits = False
        if fits:
            names = [n for n, f in zip(("key", "value"), flips, strict=True) if f]
            fix = " and ".join(f"{n}.transpose(0, 1)" for n in names)
            other = "(batch, source, embed)" if not bf else "(source, batch, embed)"
            return [
                f"[mha-layout] this nn.MultiheadAttention has batch_first={bf}: the query is {q} and key and "
                f"value are {kv}. The query fits, but {' and '.join(names)} look{'s' if len(names) == 1 else ''} "
                f"laid out the other way, {other}: pass {fix}."
            ]
    return []


def _in_replica(ctx: Context) -> bool:
    """nn.DataParallel runs replicas of the model, which torch marks with ``_is_replica``."""
    return bool(getattr(ctx.module, "_is_replica", False))


def _dataparallel_hint(arg: str, ctx: Context, m: _Mismatch) -> str:
    what = (
        "a PackedSequence is scattered field by field, so each replica's data no longer matches its batch_sizes"
        if m.reason in ("packed-rows", "packed-batch")
        else "for a state (layers*dirs, batch, hidden) dim 0 is the layers axis, so each replica got "
        "layers*dirs / n_gpus layers of every sequence next to batch / n_gpus sequences"
    )
    return (
        f"[dataparallel-hidden] this module runs in an nn.DataParallel replica. DataParallel splits every tensor "
        f"argument on dim 0, and {what}. Fixes that work: build the state inside forward from the input's batch "
        "(torch.zeros(layers*dirs, x.size(0 if batch_first else 1), hidden, device=x.device)); or pass it "
        "batch-first (batch, layers*dirs, hidden) and call .transpose(0, 1).contiguous() inside; or "
        "DataParallel(model, dim=1) only if every argument is time-first; or DistributedDataParallel, one process "
        "per GPU (rnnshapes train names --nproc N shows it). Pack inside forward, not before the call. Note "
        "that DataParallel also gathers a returned h_n on dim 0 (the layers axis)."
    )


def _list_items_hint(arg: str, ctx: Context, m: _Mismatch) -> list[str]:
    """Items of one tuple[X, ...] / list[X] argument disagreeing on a size an earlier item bound."""
    base, _, index = arg.rpartition("[")
    # an axis of *seq cannot be renamed (and its order may be the one guessed): no advice there
    name = m.dim.name if m.dim is not None and m.dim.kind == NAMED and not m.dim.via_seq else ""
    b = ctx.binding(name) if name else None
    if not base or not index.rstrip("]").isdigit() or b is None or not b.arg.startswith(base + "["):
        return []
    return [
        f"[list-items] the items of '{base}' share every name of their annotation, so item {index.rstrip(']')} "
        f"must have {name}={b.value} like {b.arg}; for items of different sizes there (sequences of their own "
        f"lengths), name that axis with an underscore: _{name}."
    ]
