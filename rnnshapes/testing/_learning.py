"""Does every parameter learn? One backward pass names the parameters that get no gradient or an exactly-zero
one, grouped as a reader thinks of them (``rnn`` layer 1 forward direction, ``head.bias``); the training
checks watch the same thing over a whole training (:class:`GradientWatch`)."""

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ._calls import (
    CallFn,
    OutputFn,
    as_args,
    buffers_kept,
    default_call,
    describe,
    fail,
    mode,
    output_name,
    refuse_meta,
    selector,
    tensor_leaves,
    weights_like,
)
from ._errors import warn_vacuous

_RNN_WEIGHT = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")

NO_GRADIENT = "no gradient"
ZERO_GRADIENT = "zero gradient"


@dataclass(frozen=True)
class _Group:
    """Parameters that a reader thinks of together: one direction of one layer of a recurrent module, the
    parameters of one other module, or a whole submodule none of whose parameters learns."""

    label: str
    names: tuple[
        str, ...
    ]  # what a reader reads: local names (``weight_ih_l1``, ``bias``); empty for a submodule
    full: tuple[str, ...]  # the full parameter names
    module: nn.Module
    submodule: bool = False  # a whole submodule (all its parameters, its children's too)
    layer: int | None = None
    reverse: bool = False

    def line(self, status: dict[str, str] | None = None) -> str:
        if not self.submodule:
            text = f"{self.label}: {', '.join(self.names)}"
        elif self.names:
            text = f"{self.label}: {', '.join(self.names)}, all of its parameters"
        else:
            text = f"{self.label}: all {len(self.full)} of its parameters"
        kinds = sorted({status[n] for n in self.full if n in status}) if status else []
        return text + (f" ({' or '.join(kinds)})" if kinds else "")


def _split(name: str) -> tuple[str, str]:
    path, _, local = name.rpartition(".")
    return path, local


def _module_label(path: str, module: nn.Module) -> str:
    return f"{path or 'the model'} ({type(module).__name__})"


def group_parameters(model: nn.Module, names: Iterable[str]) -> list[_Group]:
    """``names`` (full parameter names of ``model``) grouped: a whole submodule none of whose parameters is
    missing from ``names`` collapses into one group (the outermost such submodule); the rest go by module, and a
    recurrent module's weights by layer and direction. Groups come in the model's parameter order."""
    chosen = set(names)
    order = {n: k for k, (n, _) in enumerate(model.named_parameters())}
    modules = dict(model.named_modules())
    taken: set[str] = set()
    groups: list[tuple[int, _Group]] = []
    for path, module in modules.items():  # outermost first: named_modules is a pre-order walk
        own = [f"{path}.{n}" if path else n for n, _ in module.named_parameters()]
        if not own or any(n in taken for n in own) or not set(own) <= chosen:
            continue
        if path == "":
            continue  # the whole model: said better by the finer groups
        taken.update(own)
        leaf = not list(module.children()) and len(own) <= 4
        names = tuple(_split(n)[1] for n in own) if leaf else ()
        group = _Group(_module_label(path, module), names, tuple(own), module, submodule=True)
        groups.append((min(order[n] for n in own), group))
    fine: dict[tuple[str, int | None, bool], list[str]] = {}
    for name in sorted(chosen - taken, key=lambda n: order.get(n, len(order))):
        path, local = _split(name)
        module = modules.get(path, model)
        match = _RNN_WEIGHT.match(local) if isinstance(module, nn.RNNBase) else None
        key = (path, int(match.group(3)), bool(match.group(4))) if match else (path, None, False)
        fine.setdefault(key, []).append(name)
    for (path, layer, reverse), full in fine.items():
        module = modules.get(path, model)
        label = _module_label(path, module)
        if layer is not None:
            assert isinstance(module, nn.RNNBase)
            label += f" layer {layer}"
            if module.bidirectional:
                label += f", {'backward' if reverse else 'forward'} direction"
        group = _Group(label, tuple(_split(n)[1] for n in full), tuple(full), module, False, layer, reverse)
        groups.append((min(order.get(n, len(order)) for n in full), group))
    return [g for _, g in sorted(groups, key=lambda item: item[0])]


def describe_parameters(
    model: nn.Module, names: Iterable[str], status: dict[str, str] | None = None
) -> list[str]:
    """One line per group: ``rnn (GRU) layer 1, forward direction: weight_ih_l1, ... (zero gradient)``."""
    return [group.line(status) for group in group_parameters(model, names)]


def _hint(groups: Sequence[_Group], status: dict[str, str], ran: set[int] | None = None) -> str:
    """The likeliest cause, read from which parameters are dead (and, when known, which modules ran)."""
    for group in groups:
        module = group.module
        if not isinstance(module, nn.RNNBase) or not module.bidirectional or group.layer is None:
            continue
        last = module.num_layers - 1
        kind = type(module).__name__
        full_direction = {f"{w}_{g}_l{group.layer}" for w in ("weight", "bias") for g in ("ih", "hh")}
        if not module.bias:
            full_direction = {n for n in full_direction if n.startswith("weight")}
        dead = {n.removesuffix("_reverse") for n in group.names}
        if group.layer == last and not group.reverse and full_direction <= dead:
            return (
                f"h_n[-1] of a bidirectional {kind} is only the BACKWARD direction of its last layer (h_n is "
                "(layers*2, batch, hidden), the directions of each layer side by side): the forward direction "
                f"of layer {last} never reaches the output. Read both: torch.cat([h_n[-2], h_n[-1]], dim=-1), "
                f"or h_n.view(layers, 2, batch, hidden)[-1]; the layer that reads them then takes 2*hidden features"
            )
        if group.layer == last and group.reverse and dead == {f"weight_hh_l{last}"}:
            return (
                f"out[:, -1] of a bidirectional {kind}: at the last step the backward direction has read that "
                "one step only, from a zero state, so its recurrent weights (weight_hh) never act. Take h_n "
                "of both directions (torch.cat([h_n[-2], h_n[-1]], dim=-1)) instead of the last output step"
            )
        if group.layer == last and group.reverse and full_direction <= dead:
            return (
                f"only the forward half of a bidirectional {kind} reaches the output (h_n[-2], or "
                "out[..., :hidden]): the backward direction of the last layer never does. Read both halves, "
                "or build the layer with bidirectional=False"
            )
    whole = [g for g in groups if g.submodule]
    if whole and len(whole) == len(groups):
        idle = [g.label.split(" (")[0] for g in whole if ran is not None and id(g.module) not in ran]
        if ran is not None and len(idle) == len(whole):
            return (
                f"an unused submodule: {', '.join(idle)} never ran in this call of the model: built in "
                "__init__, never called in forward (or called on a path this input does not take)"
            )
        names = ", ".join(g.label.split(" (")[0] for g in whole)
        if ran is not None:
            return (
                f"a detached branch: {names} ran, but its output does not reach the result with a gradient: "
                ".detach(), .data, torch.no_grad(), .item() / .numpy(), or an output computed and thrown away"
            )
        return (
            f"an unused submodule: {names} is built in __init__ but its output never reaches the result "
            "(forward does not call it, or throws its output away, or detaches it)"
        )
    if all(status.get(n) == NO_GRADIENT for g in groups for n in g.full):
        return (
            "a detached branch: .detach(), .data, torch.no_grad(), .item() or .numpy() cut these parameters "
            "off the output; or an unused submodule (built in __init__, never called in forward)"
        )
    return (
        "the usual causes: h_n[-1] of a bidirectional layer (its backward direction only), a detached branch "
        "(.detach(), .data, torch.no_grad()), an unused submodule; an exactly-zero gradient: a product with "
        "zero, an index or mask that drops this part of a tensor, ReLUs that are all dead"
    )


def check_every_parameter_learns(
    model: nn.Module,
    inputs: Any,
    *,
    call: CallFn | None = None,
    output: OutputFn | None = None,
    loss: Callable[[Tensor], Tensor] | None = None,
    train: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """Check that every trainable parameter gets a non-zero gradient from one backward pass.

    Runs the model once, back-propagates ``loss(output(result))`` (default: a randomly weighted sum of the
    output, so that no gradient cancels by accident) and names every parameter whose gradient is missing (the
    parameter is not in the graph: an unused submodule, a detached branch) or exactly zero everywhere (it is in
    the graph but cannot change the output: ``h_n[-1]`` of a bidirectional layer is its backward direction
    only, so the forward direction of its last layer gets zero gradient). Such parameters never learn, while
    the model may still train well enough to pass every other check. A gradient that is zero only behind a
    zero-initialised parameter (a head or a ReZero gate started at 0, which gets a gradient and learns at the
    first step) is not a fault: the check runs once more with those parameters non-zero (zero again after)
    before it judges.

    The parameters are grouped as a reader thinks of them: one line for each direction of each layer of a
    recurrent module (``rnn (GRU) layer 1, forward direction``), one for each other module (``head
    (Linear): bias``), one for a submodule none of whose parameters learns. The model's ``.grad`` fields and
    buffers (a BatchNorm's running statistics, moved by the check's own forward) are left as they were.
    Frozen parameters (``requires_grad=False``) are not checked.

    Args:
        model: the model.
        inputs: one input or a tuple of positional inputs.
        call, output: as everywhere in ``rnnshapes.testing``.
        loss: ``loss(output(result)) -> scalar`` to differentiate, e.g.
            ``lambda logits: F.cross_entropy(logits, targets)``; default a randomly weighted sum.
        train: run in training mode (default; what learning sees); ``False`` for eval mode (dropout off).
            The module's modes are restored after.
        seed: seed of the random output weights.

    Returns:
        ``{parameter name: max |gradient|}`` for every checked parameter (for one behind a parameter started at
        zero, the value of the pass with that parameter made non-zero).

    Raises:
        CheckFailed: naming the parameters without gradient, grouped, with the likeliest cause.
    """
    refuse_meta("check_every_parameter_learns", model, inputs)
    __tracebackhide__ = True
    with buffers_kept(model):  # its own train-mode forward moves a BatchNorm's running statistics: put back
        return _every_parameter_learns(model, inputs, call, output, loss, train, seed)


def _every_parameter_learns(
    model: nn.Module,
    inputs: Any,
    call: CallFn | None,
    output: OutputFn | None,
    loss: Callable[[Tensor], Tensor] | None,
    train: bool,
    seed: int,
) -> dict[str, float]:
    __tracebackhide__ = True
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise fail(
            "every parameter learns: the model has no trainable parameters.",
            f"{type(model).__name__} has {sum(1 for _ in model.parameters())} parameters, none with "
            "requires_grad",
            "unfreeze the parameters (requires_grad_(True)) before checking",
        )
    args = as_args(inputs)
    select = selector(output)
    ran: set[int] = set()
    hooks = [m.register_forward_pre_hook(lambda m, _: ran.add(id(m))) for m in model.modules()]
    steps: dict[nn.Module, bool] = {}  # recurrent module -> did it ever run past one step from a zero state
    hooks += [
        m.register_forward_pre_hook(_step_recorder(steps), with_kwargs=True)
        for m in model.modules()
        if isinstance(m, (nn.RNNBase, nn.RNNCellBase))
    ]
    try:
        with mode(model, train), torch.enable_grad():
            result = (call or default_call)(model, *args)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.enable_grad():
        out = select(result)
        if not isinstance(out, Tensor):
            raise TypeError(f"output(result) must return a tensor, got {describe(out)}")
        target = loss(out) if loss is not None else (out * weights_like(out, seed)).sum()
        if not isinstance(target, Tensor) or target.numel() != 1:
            raise TypeError(f"loss(output) must return a one-element tensor, got {describe(target)}")
        if not target.requires_grad:
            raise fail(
                "every parameter learns: the output does not depend on any parameter (it has no gradient).",
                f"{output_name(output)}: {describe(out)}",
                "the output was detached or computed under torch.no_grad(); or pass output=... to point the "
                "check at the tensor the loss reads",
            )
        grads = torch.autograd.grad(target, [p for _, p in named], allow_unused=True)
    sizes: dict[str, float] = {}
    status: dict[str, str] = {}
    for (name, _), grad in zip(named, grads, strict=True):
        if grad is None:
            status[name] = NO_GRADIENT
            sizes[name] = 0.0
            continue
        sizes[name] = float(grad.detach().abs().max()) if grad.numel() else 0.0
        if not sizes[name] > 0:
            status[name] = ZERO_GRADIENT
    one_step = [
        name
        for name, m in model.named_modules()
        if isinstance(m, (nn.RNNBase, nn.RNNCellBase)) and steps.get(m) is False
    ]
    unseen = sorted(
        n for n in status if status[n] == ZERO_GRADIENT and _hidden_weight_of(n, one_step)
    )  # h0 = 0 multiplies weight_hh: one step from a zero state gives it no gradient, in a correct model too
    if unseen:
        warn_vacuous(
            f"check_every_parameter_learns: {', '.join(one_step) or 'the model'} ran one step from a zero state, "
            f"so {', '.join(unseen)} (the weights applied to the previous state) cannot get a gradient from "
            "these inputs and were not judged. Give sequences of 2 or more steps (or a non-zero initial state)"
        )
        for n in unseen:
            del status[n]
    for name, size in _unblocked(model, args, call, select, loss, train, seed, status).items():
        del status[name]  # zero only behind a zero-initialised parameter, which learns at the first step
        sizes[name] = size
    if status:
        groups = group_parameters(model, status)
        lines = [group.line(status) for group in groups]
        shown = lines[:12] + ([f"... and {len(lines) - 12} more groups"] if len(lines) > 12 else [])
        dead = sum(p.numel() for n, p in named if n in status)
        total = sum(p.numel() for _, p in named)
        raise fail(
            f"every parameter learns failed: {len(status)} of {len(named)} parameters get no gradient "
            f"({dead} of {total} values, {100 * dead / total:.0f}%), so they never learn.",
            f"one backward pass from {output_name(output)} {describe(out)} in {'train' if train else 'eval'} "
            "mode; the parameters without gradient:\n" + "\n".join(f"  {line}" for line in shown),
            _hint(groups, status, ran)
            + (_other_outputs(result, output) if any(g.submodule for g in groups) else ""),
        )
    return sizes


def _unblocked(
    model: nn.Module,
    args: tuple[Any, ...],
    call: CallFn | None,
    select: Callable[[Any], Any],
    loss: Callable[[Tensor], Tensor] | None,
    train: bool,
    seed: int,
    status: dict[str, str],
) -> dict[str, float]:
    """The parameters with an exactly zero gradient that get one once every all-zero parameter that itself gets a
    gradient is made non-zero: a zero-initialised head or a ReZero gate blocks the gradient of what comes before
    it at initialisation only, since it learns at the first step; such parameters are not dead. The zero
    parameters are set in place for one more forward and backward pass, and zeroed again after (a copy of the
    model may not be possible: a non-leaf tensor kept on a module, the old weight_norm)."""
    zero = [n for n, s in status.items() if s == ZERO_GRADIENT]
    params = dict(model.named_parameters())
    starts_at_zero = [
        n for n, p in params.items() if p.requires_grad and n not in status and p.numel() and not p.any()
    ]
    if not zero or not starts_at_zero:
        return {}
    generator = torch.Generator().manual_seed(seed)
    try:
        with torch.no_grad():
            for n in starts_at_zero:
                p = params[n]
                p.copy_(0.01 * torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p))
        with mode(model, train), torch.enable_grad():
            out = select((call or default_call)(model, *args))
            target = loss(out) if loss is not None else (out * weights_like(out, seed)).sum()
            grads = torch.autograd.grad(target, [params[n] for n in zero], allow_unused=True)
    finally:
        with torch.no_grad():
            for n in starts_at_zero:
                params[n].zero_()  # they were all zero
    return {
        n: float(g.detach().abs().max())
        for n, g in zip(zero, grads, strict=True)
        if g is not None and bool(g.detach().ne(0).any())
    }


def _other_outputs(result: Any, output: OutputFn | None) -> str:
    """When the default output picked one tensor of several: the dead parameters may feed another one."""
    leaves = tensor_leaves(result) if output is None else []
    if len(leaves) < 2:
        return ""
    names = ", ".join(name for name, _ in leaves[:4]) + (", ..." if len(leaves) > 4 else "")
    return (
        f"; or they feed another tensor of the result ({names}): the check differentiates only the first, so "
        "pass output= to cover every output that trains, e.g. output=lambda r: sum(t.sum() for t in (...))"
    )


def _step_recorder(steps: dict[nn.Module, bool]) -> Callable[..., None]:
    """A pre-hook recording, per recurrent module, whether any call ran more than one step or from a state that
    is not all zeros (then its hidden-to-hidden weights can get a gradient)."""

    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        x = args[0] if args else kwargs.get("input")
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        states = [t for t in (hx if isinstance(hx, (tuple, list)) else (hx,)) if isinstance(t, Tensor)]
        if isinstance(module, nn.RNNCellBase):
            n = 1
        elif isinstance(x, PackedSequence):
            n = len(x.batch_sizes)
        elif isinstance(x, Tensor):
            batched = x.dim() == 3
            n = int(x.shape[1 if batched and getattr(module, "batch_first", False) else 0])
        else:
            n = 2  # unknown: assume the hidden weights can learn
        more = n > 1 or any(bool(t.detach().ne(0).any()) for t in states)
        steps[module] = steps.get(module, False) or more

    return hook


def _hidden_weight_of(name: str, modules: list[str]) -> bool:
    """Whether parameter ``name`` is a hidden-to-hidden weight of one of ``modules`` (weight_hh_l0, ...)."""
    prefix, _, leaf = name.rpartition(".")
    return prefix in modules and re.fullmatch(r"weight_hh(_l\d+(_reverse)?)?", leaf) is not None


class GradientWatch:
    """Watches the parameters of ``model`` during a training: which ever received a non-zero gradient.

    A tensor hook on every trainable parameter sees each gradient as backward computes it, whatever the
    training loop does with ``.grad`` afterwards (zeroing it before or after the step). Use as a context
    manager; ``never`` lists the parameters that got none, in the model's order."""

    def __init__(self, model: nn.Module | None) -> None:
        self.model = model
        self.seen: set[str] = set()
        self.watched: list[str] = []
        self._handles: list[Any] = []

    def __enter__(self) -> "GradientWatch":
        if self.model is None:
            return self
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            self.watched.append(name)
            self._handles.append(p.register_hook(self._hook(name)))
        return self

    def _hook(self, name: str) -> Callable[[Tensor], None]:
        def hook(grad: Tensor) -> None:
            if name not in self.seen and grad.numel() and bool(grad.detach().ne(0).any()):
                self.seen.add(name)

        return hook

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def never(self) -> list[str]:
        return [n for n in self.watched if n not in self.seen]

    def lines(self) -> list[str]:
        """The parameters that never received a non-zero gradient, grouped (empty when all did)."""
        if self.model is None or not self.never:
            return []
        return describe_parameters(self.model, self.never)
