"""The sizes a module knows before any argument is read: its recurrent layer's, a cell's, a Linear's or an
Embedding's, and ``shape_dims()``; read at the module's first checked call and again when its layer is replaced.
"""

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from ._precision import autocast_enabled
from ._specs import Context


@dataclass
class _ModuleInfo:
    memo: dict[str, Any]
    org: dict[str, tuple[Any, ...]]
    batch_first: bool
    weight_owner: nn.Module | None  # the module whose parameter sets the expected device and dtype
    weight_name: str
    weight_origin: str
    # (parent, attribute, child) from the checked module down to the recurrent layer the sizes came from:
    # if any link was replaced (``model.rnn = nn.GRU(...)``), the sizes are read again
    chain: tuple[tuple[nn.Module, str, nn.Module], ...] = ()
    # per checked function: the call signatures that passed its checks with this module as it is now
    seen: dict[Callable[..., Any], set[Any]] = field(default_factory=dict)
    # id of the module it was read from: an nn.DataParallel replica starts with a copy of the original's
    # __dict__ (this info included) and its own weights on its own device, so it must read its own
    owner: int = 0
    # the weight's shape when the sizes were read: a Linear's or a cell's sizes are its weight's (torch's
    # forward reads the weight, not in_features), read again when the weight is replaced by one of another shape
    weight_shape: tuple[int, ...] | None = None
    # batch_first read from the recurrent layers (False: none, or they differ; then *seq is tried both ways)
    layout_known: bool = False
    # what shape_dims() returned: read again at every full check (not on a call whose signature passed before),
    # and the sizes with it when it changed (a new head for fine-tuning)
    dims: dict[str, Any] | None = None

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        # read again after torch.save / pickle / copy.deepcopy: it holds functions and the module's own links,
        # which are what it was built from, not part of the model
        return _unset, ()

    def current(self) -> bool:
        for parent, attr, child in self.chain:
            if parent._modules.get(attr) is not child:
                return False
        if self.weight_shape is not None and self.weight_owner is not None:
            owner, name = self.weight_owner, self.weight_name
            w = owner._parameters.get(name)
            w = owner.__dict__.get(name) if w is None else w  # a plain tensor put in its place
            return not isinstance(w, Tensor) or tuple(w.shape) == self.weight_shape
        return True

    def weight(self) -> Tensor | None:
        """The weight as it is now: ``load_state_dict(assign=True)`` or ``.double()`` may have replaced it."""
        owner = self.weight_owner
        if owner is None:
            return None
        w = owner._parameters.get(self.weight_name)
        if w is None:  # a DataParallel replica holds its weight copies as plain attributes
            w = owner.__dict__.get(self.weight_name)
        if w is None:  # a parametrized weight (weight_norm, ...): its stored original, not a recomputation
            parametrizations = owner.__dict__.get("_modules", {}).get("parametrizations")
            entry = parametrizations._modules.get(self.weight_name) if parametrizations is not None else None
            if entry is not None:  # one original, or original0, original1, ... (weight_norm)
                w = entry._parameters.get("original")
                w = entry._parameters.get("original0") if w is None else w
        return w


def _unset() -> None:
    return None


_INFO_KEY = "_rnnshapes_info"  # kept in the module's __dict__: not a parameter, buffer or submodule


_MODES = frozenset({"LSTM", "GRU", "RNN_TANH", "RNN_RELU"})


def _is_recurrent(m: nn.Module) -> bool:
    """An ``nn.RNN/GRU/LSTM``, or a layer that says it is one (``quantize_dynamic``'s LSTM is no nn.RNNBase)."""
    if isinstance(m, nn.RNNBase):
        return True
    d = m.__dict__
    return d.get("mode") in _MODES and all(
        isinstance(d.get(k), int) for k in ("input_size", "hidden_size", "num_layers", "bidirectional")
    )


def _rnns_of(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The module's recurrent layers (itself, or every recurrent child) with their paths."""
    if _is_recurrent(module):
        return [("self", module)]
    return [(f"self.{name}", m) for name, m in module.named_modules() if name and _is_recurrent(m)]


def _chain(module: nn.Module, path: str) -> tuple[tuple[nn.Module, str, nn.Module], ...]:
    links = []
    parent = module
    for attr in path.split(".")[1:]:  # path is "self.a.b"
        child = parent._modules[attr]
        assert child is not None
        links.append((parent, attr, child))
        parent = child
    return tuple(links)


def _module_info(module: nn.Module) -> _ModuleInfo:
    """The sizes a module knows, read at its first checked call and again if its recurrent layer is replaced."""
    memo: dict[str, Any] = {}
    org: dict[str, tuple[Any, ...]] = {}
    info = _ModuleInfo(memo, org, True, None, "", "")
    if isinstance(module, nn.RNNCellBase):
        sizes = (module.input_size, module.hidden_size)
        w, wh = module._parameters.get("weight_ih"), module._parameters.get("weight_hh")
        if w is not None and w.dim() == 2:  # torch's forward reads the weights, not input_size / hidden_size
            hidden = int(wh.shape[1]) if wh is not None and wh.dim() == 2 else module.hidden_size
            sizes, info.weight_shape = (int(w.shape[1]), hidden), tuple(w.shape)
        for name, value in zip(("input", "hidden"), sizes, strict=True):
            memo[name] = value
            org[name] = ("self", "", -1, False, ())
        info.weight_owner, info.weight_name, info.weight_origin = module, "weight_ih", "self.weight_ih"
        return info
    if isinstance(module, (nn.Linear, nn.Embedding)):
        w = module._parameters.get("weight")  # None where parametrized: then the attributes
        if w is None and isinstance(module.__dict__.get("weight"), Tensor):
            w = module.__dict__["weight"]  # a plain tensor put in the parameter's place
        if w is not None and w.dim() == 2:
            info.weight_shape = tuple(w.shape)
        if isinstance(module, nn.Linear):
            memo["input"] = info.weight_shape[1] if info.weight_shape else module.in_features
        elif info.weight_shape:
            memo["vocab"], memo["embed"] = info.weight_shape
        else:
            memo["vocab"], memo["embed"] = module.num_embeddings, module.embedding_dim
        for name in memo:
            org[name] = ("self", "", -1, False, ())
        info.weight_owner, info.weight_name, info.weight_origin = module, "weight", "self.weight"
        return info
    rnns = _rnns_of(module)
    if rnns:
        # the sizes all its recurrent layers agree on: where they differ (an encoder and a decoder, a char and a
        # word LSTM), which one an argument goes to is the code's business, so the arguments bind that name
        found: dict[str, set[Any]] = {}
        for _, rnn in rnns:
            values: dict[str, Any] = {
                "layers": rnn.num_layers,
                "dirs": 2 if rnn.bidirectional else 1,
                "hidden": getattr(rnn, "proj_size", 0) or rnn.hidden_size,
                "input": rnn.input_size,
                "batch_first": bool(rnn.batch_first),
                "cell": rnn.hidden_size if rnn.mode == "LSTM" else None,  # bound where every layer is an LSTM
            }
            for name, value in values.items():
                found.setdefault(name, set()).add(value)
        path = rnns[0][0] if len(rnns) == 1 else ", ".join(p for p, _ in rnns)
        for name, seen in found.items():
            if name == "batch_first":
                if len(seen) == 1:
                    info.batch_first, info.layout_known = seen.pop(), True
            elif len(seen) == 1 and None not in seen:
                memo[name] = seen.pop()
                org[name] = (path, "", -1, False, ())
        first_path, first = rnns[0]
        names = getattr(first, "_flat_weights_names", None)
        if names:
            info.weight_owner, info.weight_name = first, names[0]
            info.weight_origin = f"{first_path}.{names[0]}"
        info.chain = tuple(link for p, _ in rnns if p != "self" for link in _chain(module, p))
    extra = getattr(module, "shape_dims", None)
    if callable(extra):
        info.dims = dict(extra())
        for name, value in info.dims.items():
            memo[name] = int(value)
            org[name] = ("self.shape_dims()", "", -1, False, ())
    return info


def _info(module: nn.Module, full: bool = False) -> _ModuleInfo:
    """The module's sizes; ``full`` (a full check) also reads ``shape_dims()`` again."""
    info = module.__dict__.get(_INFO_KEY)
    stale = full and info is not None and info.dims is not None and module.shape_dims() != info.dims  # type: ignore[operator]
    if info is None or stale or info.owner != id(module) or not info.current():
        info = module.__dict__[_INFO_KEY] = _module_info(module)
        info.owner = id(module)
    return typing.cast(_ModuleInfo, info)


def module_context(name: str, module: nn.Module | None) -> Context:
    """A call context with the sizes the module knows already bound."""
    if module is None:
        ctx = Context(name, None, {}, {})
        ctx.layout_known = False  # a free function: no batch_first to read
        return ctx
    info = _info(module, full=True)
    ctx = Context(name, module, info.memo.copy(), {}, info.org)
    bf = getattr(module, "batch_first", None)
    ctx.batch_first = bf if isinstance(bf, bool) else info.batch_first
    ctx.layout_known = isinstance(bf, bool) or info.layout_known
    ctx.weight = w = info.weight()
    ctx.weight_origin = info.weight_origin
    # under torch.autocast for the weights' device, torch casts per op: floating dtypes may differ
    ctx.autocast = w is not None and autocast_enabled(w.device)
    return ctx
