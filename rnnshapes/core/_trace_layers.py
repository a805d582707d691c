"""What ``trace`` knows about each kind of layer it records: its configuration line, the names of the axes of
what one call received and returned, and the sizes of that call that disagree with each other.

Disagreements are returned as notes, never raised: the trace shows the whole forward even when it is wrong,
and the call then goes on to torch, which raises what it raises. Names come from the one vocabulary
(``_vocab``); ``""`` leaves an axis unnamed here (``trace`` may still name it from a neighbouring call).
"""

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ._vocab import seq_axes

Axes = tuple[str, ...] | None  # one name per axis ("" unnamed); None: no names (not a tensor, or an odd rank)
TRACED = (nn.RNNBase, nn.RNNCellBase, nn.Embedding, nn.Linear, nn.MultiheadAttention)
"""The layers that get one row per call."""


@dataclass
class Leaf:
    """One value a call received or returned, with the names of its axes (of ``data`` when packed)."""

    name: str
    value: Any
    axes: Axes = None


@dataclass
class CallInfo:
    """What a layer's pre-hook learned: the inputs, the notes, and what its outputs are read with."""

    inputs: list[Leaf]
    notes: list[str] = field(default_factory=list)
    batch: int | None = None  # the batch this call runs (None: unbatched, or no batch axis known)
    state: dict[str, Any] = field(default_factory=dict)
    links: list[tuple[int, int]] = field(default_factory=list)  # (input leaf, output leaf): same leading axes


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _shape(value: Any) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, Tensor) else None


def _own_forward(module: nn.Module) -> bool:
    """True when a subclass of a torch layer replaced its ``forward``: its arguments are then its own."""
    base = next(c for c in type(module).__mro__ if c.__module__.startswith("torch.nn."))
    return type(module).forward is not getattr(base, "forward", None)


def config(module: nn.Module) -> str:
    """``GRU(input=100, hidden=256, layers=1, dirs=2, batch_first)``: a layer's sizes in the vocabulary."""
    name = type(module).__name__
    parts: list[str] = []
    if isinstance(module, nn.RNNBase):
        parts = [f"input={module.input_size}", f"hidden={module.hidden_size}"]
        if getattr(module, "proj_size", 0):
            parts.append(f"proj={module.proj_size}")
        parts += [f"layers={module.num_layers}", f"dirs={2 if module.bidirectional else 1}"]
        parts += ["batch_first"] if module.batch_first else []
        parts += [] if module.bias else ["bias=False"]
        parts += [f"dropout={module.dropout:g}"] if module.dropout else []
    elif isinstance(module, nn.RNNCellBase):
        parts = [f"input={module.input_size}", f"hidden={module.hidden_size}"]
        parts += [] if module.bias else ["bias=False"]
    elif isinstance(module, nn.Embedding):
        parts = [f"vocab={module.num_embeddings}", f"embed={module.embedding_dim}"]
        parts += [] if module.padding_idx is None else [f"padding_idx={module.padding_idx}"]
    elif isinstance(module, nn.Linear):
        parts = [f"input={module.in_features}", f"out={module.out_features}"]
        parts += [] if module.bias is not None else ["bias=False"]
    elif isinstance(module, nn.MultiheadAttention):
        parts = [f"embed={module.embed_dim}", f"heads={module.num_heads}"]
        parts += [] if module.kdim == module.embed_dim else [f"kdim={module.kdim}"]
        parts += [] if module.vdim == module.embed_dim else [f"vdim={module.vdim}"]
        parts += ["batch_first"] if module.batch_first else []
    return f"{name}({', '.join(parts)})"


def inputs(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallInfo:
    """Name what a call received and note the sizes that disagree, before the call runs."""
    if _own_forward(module):
        return _generic(args, kwargs)
    if isinstance(module, nn.RNNBase):
        return _recurrent(module, args, kwargs)
    if isinstance(module, nn.RNNCellBase):
        return _cell(module, args, kwargs)
    if isinstance(module, nn.Embedding):
        return _embedding(module, args, kwargs)
    if isinstance(module, nn.Linear):
        return _linear(module, args, kwargs)
    if isinstance(module, nn.MultiheadAttention):
        return _attention(module, args, kwargs)
    return _generic(args, kwargs)


def outputs(module: nn.Module, info: CallInfo, output: Any) -> list[Leaf]:
    """Name what the call returned."""
    reader = info.state.get("outputs")
    if reader is None:
        return [Leaf("output", output)]
    leaves: list[Leaf] = reader(output)
    return leaves


def _generic(args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallInfo:
    leaves = [Leaf(f"args[{i}]", a) for i, a in enumerate(args)] + [Leaf(k, v) for k, v in kwargs.items()]
    return CallInfo(leaves)


# --- recurrent layers ---------------------------------------------------------------------------------------


def _state_note(name: str, value: Any, expected: tuple[int, ...], batch: int | None, what: str) -> list[str]:
    shape = _shape(value)
    if shape is None or shape == expected:
        return []
    names = "layers*dirs batch " + what if len(expected) == 3 else "layers*dirs " + what
    note = f"{name} is {shape}, but this call needs ({names.replace(' ', ', ')}) = {expected}"
    if len(shape) == 3 and batch is not None and shape == (expected[1], expected[0], expected[2]):
        note += f": it looks batch-first; a hidden state is always `layers*dirs batch {what}`"
    return [note]


def _recurrent(m: nn.RNNBase, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallInfo:
    x, hx = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "hx")
    dirs = 2 if m.bidirectional else 1
    ld, hidden = m.num_layers * dirs, getattr(m, "proj_size", 0) or m.hidden_size
    feats = "dirs*hidden" if dirs == 2 else "hidden"
    info = CallInfo([])
    x_axes: Axes = None
    unbatched = False
    if isinstance(x, PackedSequence):
        x_axes, features = ("total", "input"), x.data.shape[-1]
        info.batch = int(x.batch_sizes[0])
    elif isinstance(x, Tensor) and x.dim() in (2, 3):
        unbatched = x.dim() == 2
        x_axes = ("time", "input") if unbatched else (*seq_axes(m.batch_first), "input")
        features = x.shape[-1]
        info.batch = None if unbatched else int(x.shape[0 if m.batch_first else 1])
    else:
        features = None
    if features is not None and features != m.input_size:
        info.notes.append(f"input has {features} features per step, but the layer has input={m.input_size}")
    # a 2-D input is one unbatched sequence (`time input`), a call torch runs: its axes say so, no note
    state_names = ("layers*dirs", "hidden") if unbatched else ("layers*dirs", "batch", "hidden")

    def state_axes(last: str) -> tuple[str, ...]:
        return (*state_names[:-1], last)

    def expected(size: int) -> tuple[int, ...]:
        return (ld, size) if unbatched or info.batch is None else (ld, info.batch, size)

    info.inputs.append(Leaf("input", x, x_axes))
    lstm = isinstance(m, nn.LSTM)
    if lstm and isinstance(hx, (tuple, list)) and len(hx) == 2:
        info.inputs += [Leaf("h_0", hx[0], state_axes("hidden")), Leaf("c_0", hx[1], state_axes("cell"))]
        info.notes += _state_note("h_0", hx[0], expected(hidden), info.batch, "hidden")
        info.notes += _state_note("c_0", hx[1], expected(m.hidden_size), info.batch, "cell")
    else:
        info.inputs.append(Leaf("hx" if lstm else "h_0", hx, None if lstm else state_axes("hidden")))
        if not lstm:
            info.notes += _state_note("h_0", hx, expected(hidden), info.batch, "hidden")

    def read(output: Any) -> list[Leaf]:
        out, state = output
        out_axes = ("total", feats) if isinstance(out, PackedSequence) else (*(x_axes or ())[:-1], feats)
        leaves = [Leaf("output", out, out_axes)]
        if isinstance(state, tuple):
            leaves += [Leaf("h_n", state[0], state_axes("hidden")), Leaf("c_n", state[1], state_axes("cell"))]
        else:
            leaves.append(Leaf("h_n", state, state_axes("hidden")))
        return leaves

    info.state["outputs"] = read
    return info


def _cell(m: nn.RNNCellBase, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallInfo:
    x, hx = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "hx")
    info = CallInfo([])
    unbatched = isinstance(x, Tensor) and x.dim() == 1
    if isinstance(x, Tensor) and x.dim() in (1, 2):
        info.batch = None if unbatched else int(x.shape[0])
        if x.shape[-1] != m.input_size:
            info.notes.append(f"input has {x.shape[-1]} features, but the cell has input={m.input_size}")
    lead = () if unbatched else ("batch",)
    info.inputs.append(Leaf("input", x, (*lead, "input")))
    want = (m.hidden_size,) if unbatched or info.batch is None else (info.batch, m.hidden_size)
    states = list(hx) if isinstance(m, nn.LSTMCell) and isinstance(hx, (tuple, list)) else [hx]
    names = ("h", "c") if len(states) == 2 else ("hx",)
    for name, value, last in zip(names, states, ("hidden", "cell"), strict=False):
        info.inputs.append(Leaf(name, value, (*lead, last)))
        shape = _shape(value)
        if shape is not None and shape != want:
            info.notes.append(f"{name} is {shape}, but this call needs ({', '.join((*lead, last))}) = {want}")

    def read(output: Any) -> list[Leaf]:
        if isinstance(output, tuple):
            return [Leaf("h'", output[0], (*lead, "hidden")), Leaf("c'", output[1], (*lead, "cell"))]
        return [Leaf("h'", output, (*lead, "hidden"))]

    info.state["outputs"] = read
    return info


# --- embedding, linear, attention ---------------------------------------------------------------------------


def _embedding(m: nn.Embedding, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallInfo:
    x = _arg(args, kwargs, 0, "input")
    info = CallInfo([Leaf("input", x, ("",) * x.dim() if isinstance(x, Tensor) else None)], links=[(0, 0)])
    if isinstance(x, Tensor):
        if x.is_floating_point() or x.is_complex():
            info.notes.append(
                f"indices are {str(x.dtype).removeprefix('torch.')}: an embedding reads integers"
            )
        elif x.numel():
            try:
                lo, hi = int(x.min()), int(x.max())
            except RuntimeError:  # a value without concrete data (vmap, fake tensors): nothing to read
                lo, hi = 0, 0
            if lo < 0 or hi >= m.num_embeddings:
                info.notes.append(
                    f"indices run {lo}..{hi}, outside the embedding's rows 0..{m.num_embeddings - 1} "
                    f"(vocab={m.num_embeddings})"
                )

    def read(output: Any) -> list[Leaf]:
        axes = ("",) * (output.dim() - 1) + ("embed",) if isinstance(output, Tensor) else None
        return [Leaf("output", output, axes)]

    info.state["outputs"] = read
    return info


def _linear(m: nn.Linear, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallInfo:
    x = _arg(args, kwargs, 0, "input")
    axes = ("",) * (x.dim() - 1) + ("input",) if isinstance(x, Tensor) and x.dim() else None
    info = CallInfo([Leaf("input", x, axes)], links=[(0, 0)])
    if isinstance(x, Tensor) and x.dim() and x.shape[-1] != m.in_features:
        info.notes.append(f"input has {x.shape[-1]} features, but the layer has input={m.in_features}")

    def read(output: Any) -> list[Leaf]:
        return [Leaf("output", output, ("",) * output.dim() if isinstance(output, Tensor) else None)]

    info.state["outputs"] = read
    return info


def _attention(m: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallInfo:
    q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    mask, attn_mask = _arg(args, kwargs, 3, "key_padding_mask"), _arg(args, kwargs, 5, "attn_mask")
    batched = isinstance(q, Tensor) and q.dim() == 3
    info = CallInfo([])

    def layout(length: str, last: str) -> tuple[str, ...]:
        if not batched:
            return (length, last)
        return ("batch", length, last) if m.batch_first else (length, "batch", last)

    k_last = "embed" if m.kdim == m.embed_dim else ""
    v_last = "embed" if m.vdim == m.embed_dim else ""
    info.inputs += [
        Leaf("query", q, layout("target", "embed")),
        Leaf("key", k, layout("source", k_last)),
        Leaf("value", v, layout("source", v_last)),
    ]
    b_axis = 0 if m.batch_first else 1
    if isinstance(q, Tensor) and q.dim() in (2, 3):
        info.batch = int(q.shape[b_axis]) if batched else None
        if q.shape[-1] != m.embed_dim:
            info.notes.append(f"query has {q.shape[-1]} features, but the layer has embed={m.embed_dim}")
    source = None
    if isinstance(k, Tensor) and isinstance(v, Tensor) and k.dim() == v.dim() == (3 if batched else 2):
        s_axis = (1 - b_axis) if batched else 0
        source = int(k.shape[s_axis])
        if batched and (k.shape[b_axis] != info.batch or v.shape[b_axis] != info.batch):
            info.notes.append(
                f"key/value batch {k.shape[b_axis]}/{v.shape[b_axis]}, but query batch={info.batch}"
            )
        if v.shape[s_axis] != source:
            info.notes.append(f"key has source={source} steps, value has {v.shape[s_axis]}")
    if mask is not None:
        info.inputs.append(Leaf("key_padding_mask", mask, ("batch", "source") if batched else ("source",)))
        want = (info.batch, source) if batched else (source,)
        if source is not None and _shape(mask) != want:
            info.notes.append(
                f"key_padding_mask is {_shape(mask)}, but this call needs (batch, source) = {want}"
            )
    if attn_mask is not None:
        three = isinstance(attn_mask, Tensor) and attn_mask.dim() == 3
        axes = ("batch*heads", "target", "source") if three else ("target", "source")
        info.inputs.append(Leaf("attn_mask", attn_mask, axes))

    def read(output: Any) -> list[Leaf]:
        out, weights = output
        leaves = [Leaf("attn_output", out, layout("target", "embed"))]
        if weights is None:
            return [*leaves, Leaf("attn_weights", None)]
        per_head = weights.dim() == (4 if batched else 3)
        axes = ("heads",) if per_head else ()
        axes = ("batch", *axes) if batched else axes
        return [*leaves, Leaf("attn_weights", weights, (*axes, "target", "source"))]

    info.state["outputs"] = read
    return info
