"""Training checks: convergence to a target, overfitting one batch, the loss at initialisation."""

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

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
)
from ._errors import ConvergenceFailed
from ._learning import GradientWatch
from ._sparkline import describe_curve

Mode = Literal[">=", "<="]


@dataclass
class ConvergenceResult:
    """What :func:`check_converges` saw.

    Attributes:
        name: what was trained (for reports).
        target: the metric's target.
        mode: ``">="`` (the metric must rise to the target, e.g. accuracy) or ``"<="`` (fall to it, e.g. loss).
        reached: whether the target was reached.
        steps: training steps taken.
        seconds: wall time of the whole run (training and evaluations).
        curve: ``(step, metric)`` at every evaluation.
        losses: what every ``train_step()`` returned.
        stopped_by: ``"target"``, ``"steps"`` (the step budget ran out) or ``"time"`` (``max_seconds``).
        no_gradient: the parameters that never received a non-zero gradient during the whole training (they
            never learned), by name; empty when every one did, or when no model was watched.
        no_gradient_groups: the same, grouped as a reader thinks of them, one line per group
            (``rnn (GRU) layer 1, forward direction: weight_ih_l1, ...``).
        watched: whether the parameters were watched (``check_overfits_batch`` always; ``check_converges``
            when given ``model=``).
    """

    name: str
    target: float
    mode: Mode
    reached: bool = False
    steps: int = 0
    seconds: float = 0.0
    curve: list[tuple[int, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    stopped_by: str = "steps"
    no_gradient: list[str] = field(default_factory=list)
    no_gradient_groups: list[str] = field(default_factory=list)
    watched: bool = False

    @property
    def metric(self) -> float:
        """The last evaluated metric (NaN before the first evaluation)."""
        return self.curve[-1][1] if self.curve else math.nan

    @property
    def best(self) -> tuple[int, float]:
        """``(step, metric)`` of the best evaluation."""
        finite = [p for p in self.curve if math.isfinite(p[1])]
        if not finite:
            return (0, math.nan)
        pick = max if self.mode == ">=" else min
        return pick(finite, key=lambda p: p[1])

    def summary(self) -> str:
        """Several lines: outcome, metric curve and loss curve as sparklines."""
        verb = "reached" if self.reached else "did not reach"
        best_step, best = self.best
        lines = [
            f"{self.name} {verb} metric {self.mode} {self.target:g} in {self.steps} steps ({self.seconds:.2f} s, "
            f"stopped by {self.stopped_by}): last {self.metric:.4g}, best {best:.4g} at step {best_step}",
            f"metric: {describe_curve(v for _, v in self.curve)}",
            f"loss:   {describe_curve(self.losses)}",
        ]
        if self.no_gradient:
            lines.append(
                f"{len(self.no_gradient)} parameters never received a non-zero gradient (never learned):"
            )
            lines += [f"  {line}" for line in self.no_gradient_groups[:6]]
            if len(self.no_gradient_groups) > 6:
                lines.append(f"  ... and {len(self.no_gradient_groups) - 6} more groups")
        return "\n".join(lines)

    def as_record(self) -> dict[str, Any]:
        """A plain dict (JSON-able) for the pytest plugin's end-of-run table."""
        return {
            "name": self.name,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "metric": self.metric,
            "target": self.target,
            "mode": self.mode,
            "reached": self.reached,
            "curve": [v for _, v in self.curve],
            "no_gradient": list(self.no_gradient_groups) if self.watched else None,
        }


def _reached(value: float, target: float, mode: Mode) -> bool:
    return value >= target if mode == ">=" else value <= target


def _scalar(value: Any, what: str) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise TypeError(f"{what} must return a number or a one-element tensor, got {describe(value)}")
        return float(value.detach().item())
    return float(value)


def check_converges(
    train_step: Callable[[], Any],
    metric: Callable[[], Any] | None,
    target: float,
    *,
    max_steps: int,
    mode: Mode = ">=",
    eval_every: int = 1,
    max_seconds: float | None = None,
    name: str = "training",
    model: nn.Module | None = None,
) -> ConvergenceResult:
    """Train until a metric reaches ``target``, within a budget of steps (and optionally seconds).

    Calls ``train_step()`` (one optimisation step; returns the loss) up to ``max_steps`` times, evaluates
    ``metric()`` every ``eval_every`` steps (and after the last step), and stops as soon as the target is
    reached.

    Args:
        train_step: one training step; returns its loss (a number or a one-element tensor).
        metric: the quantity with a target (accuracy on held-out data, a loss...). None: the loss returned by
            the last ``train_step()``.
        target: the value to reach.
        max_steps: the step budget.
        mode: ``">="`` the metric must reach ``>= target`` (accuracy); ``"<="`` it must fall to ``<= target``.
        eval_every: evaluate the metric every this many steps.
        max_seconds: optional wall-time budget; training stops (and fails) when it is spent.
        name: what is trained, for messages and reports.
        model: the model that ``train_step`` trains, to watch its parameters: the result's ``no_gradient``
            then names those that never received a non-zero gradient, passed or not (a model can reach its
            target with part of it never learning: ``h_n[-1]`` of a bidirectional layer).

    Returns:
        A :class:`ConvergenceResult` with the curve.

    Raises:
        ConvergenceFailed: (an ``AssertionError``) when the target is not reached, or a loss becomes NaN or
            infinite; the message holds the curve as a sparkline. ``.result`` has the
            :class:`ConvergenceResult`.
    """
    __tracebackhide__ = True
    if mode not in (">=", "<="):
        raise ValueError(f'mode must be ">=" or "<=", got {mode!r}')
    if max_steps < 1 or eval_every < 1:
        raise ValueError(f"max_steps and eval_every must be >= 1, got {max_steps} and {eval_every}")
    result = ConvergenceResult(name=name, target=float(target), mode=mode, watched=model is not None)
    with GradientWatch(model) as watch:
        try:
            _train(train_step, metric, target, mode, max_steps, eval_every, max_seconds, result)
        finally:
            result.no_gradient, result.no_gradient_groups = watch.never, watch.lines()
    if result.stopped_by == "non-finite loss":
        raise ConvergenceFailed(
            f"{name}: the loss became {result.losses[-1]} at step {result.steps}; training cannot go on.\n"
            "hint: lower the learning rate, clip gradients (torch.nn.utils.clip_grad_norm_), or look for "
            f"log(0) / division by zero in the loss\n{result.summary()}",
            result,
        )
    if not result.reached:
        budget = f"{max_steps} steps" + (f" / {max_seconds:g} s" if max_seconds is not None else "")
        raise ConvergenceFailed(
            f"{name} did not converge: metric {mode} {target:g} not reached within {budget}.\n"
            "hint: a flat curve means no learning (learning rate, detached tensors, frozen parameters); a curve "
            f"still rising/falling means the budget is too small; a noisy one, a learning rate too high\n"
            f"{result.summary()}",
            result,
        )
    return result


def _train(
    train_step: Callable[[], Any],
    metric: Callable[[], Any] | None,
    target: float,
    mode: Mode,
    max_steps: int,
    eval_every: int,
    max_seconds: float | None,
    result: ConvergenceResult,
) -> None:
    start = time.perf_counter()
    loss = math.nan
    for step in range(1, max_steps + 1):
        loss = _scalar(train_step(), "train_step()")
        result.losses.append(loss)
        result.steps = step
        if not math.isfinite(loss):
            result.seconds = time.perf_counter() - start
            result.stopped_by = "non-finite loss"
            return
        out_of_time = max_seconds is not None and time.perf_counter() - start > max_seconds
        if step % eval_every == 0 or step == max_steps or out_of_time:
            value = loss if metric is None else _scalar(metric(), "metric()")
            result.curve.append((step, value))
            if _reached(value, target, mode):
                result.reached = True
                result.stopped_by = "target"
                break
        if out_of_time:
            result.stopped_by = "time"
            break
    result.seconds = time.perf_counter() - start


def check_overfits_batch(
    model: nn.Module,
    inputs: Any,
    targets: Any,
    loss_fn: Callable[[Tensor, Any], Tensor],
    *,
    steps: int = 300,
    lr: float = 0.01,
    threshold: float = 0.05,
    call: CallFn | None = None,
    output: OutputFn | None = None,
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    inplace: bool = False,
    name: str = "overfit one batch",
) -> ConvergenceResult:
    """Check that the model can drive the loss on ONE small batch below ``threshold`` (memorise it).

    A model that cannot overfit a handful of examples has a bug (a detached or frozen part, outputs that ignore
    the input, targets misaligned with outputs), whatever its size.

    Args:
        model: the model; trained on a deep copy unless ``inplace``.
        inputs: one input or a tuple of positional inputs.
        targets: what ``loss_fn`` compares the output with.
        loss_fn: ``loss_fn(output(result), targets) -> scalar``.
        steps: the step budget.
        lr: learning rate of the default optimizer (Adam).
        threshold: the loss to get under.
        call, output: as everywhere in ``rnnshapes.testing``.
        optimizer: ``optimizer(parameters) -> Optimizer``; default ``torch.optim.Adam(parameters, lr=lr)``.
        inplace: train ``model`` itself instead of a copy.
        name: what is trained, for reports.

    Returns:
        The :class:`ConvergenceResult` (metric: the loss).

    Raises:
        ConvergenceFailed: with the loss curve, and the parameters that never received a gradient.
    """
    refuse_meta("check_overfits_batch", model, inputs)
    __tracebackhide__ = True
    net = model if inplace else _copy(model)
    args = as_args(inputs)
    run = call or default_call
    select = selector(output)
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise fail(
            "overfit one batch: the model has no trainable parameters.",
            f"{type(model).__name__} has {sum(1 for _ in net.parameters())} parameters, none with requires_grad",
            "unfreeze the parameters (requires_grad_(True)) before training",
        )
    opt = optimizer(params) if optimizer is not None else torch.optim.Adam(params, lr=lr)

    def train_step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(select(run(net, *args)), targets)
        loss.backward()
        opt.step()
        return float(loss.detach())

    with mode(net, True), torch.enable_grad():
        try:
            return check_converges(
                train_step, None, threshold, max_steps=steps, mode="<=", name=name, model=net
            )
        except ConvergenceFailed as e:
            r = e.result
            if r.stopped_by == "non-finite loss":
                what = f"the loss became {r.losses[-1]} at step {r.steps}"
            else:
                what = f"the loss did not fall to <= {threshold:g} within {steps} steps (last {r.metric:.4g})"
            lines = [f"overfit one batch failed: {what}.", f"hint: {_overfit_hint(r)}"]
            lines += [
                f"model {type(model).__name__} on inputs {describe(args)}; loss_fn of {output_name(output)}",
                f"loss:  {describe_curve(r.losses)}",
            ]
            if r.no_gradient:
                lines.append(f"these {len(r.no_gradient)} parameters never received a non-zero gradient:")
                lines += [f"  {line}" for line in r.no_gradient_groups[:8]]
                if len(r.no_gradient_groups) > 8:
                    lines.append(f"  ... and {len(r.no_gradient_groups) - 8} more groups")
            raise ConvergenceFailed("\n".join(lines), r) from None


def _overfit_hint(r: ConvergenceResult) -> str:
    """The likeliest cause of a failure to overfit, read from the curve and the parameters that never learned."""
    if r.stopped_by == "non-finite loss":
        return (
            "the loss diverged: lower the learning rate, clip gradients, or look for log(0) / a division by zero "
            "in the loss"
        )
    if r.no_gradient:
        return (
            "part of the model never learned (the parameters listed below got no gradient in any step): a "
            "detached branch (.detach(), torch.no_grad()), an unused submodule, or h_n[-1] of a bidirectional "
            "layer; check_every_parameter_learns names the cause"
        )
    finite = [v for v in r.losses if math.isfinite(v)]
    if finite and max(finite) - min(finite) <= 1e-3 * max(abs(finite[0]), 1e-12):
        return (
            "the loss did not move: no parameter changes the output (outputs that ignore the input, a loss "
            "computed from a detached tensor) or the learning rate is ~0"
        )
    return (
        "a correct model memorises a few examples easily; look for outputs that ignore the input or mix "
        "examples (check_batch_independence), targets misaligned with outputs, probabilities fed to a loss that "
        "wants logits, or a learning rate far off (a loss still falling: more steps or a larger lr)"
    )


def _copy(model: nn.Module) -> nn.Module:
    """A deep copy whose RNN weights are flattened again (a copied cuDNN RNN would re-compact every call)."""
    net = copy.deepcopy(model)
    for m in net.modules():
        if isinstance(m, nn.RNNBase):
            m.flatten_parameters()
    return net


def _probabilities(rows: Tensor) -> bool:
    """Every value in [0, 1] and each row summing to 1 (rows that are all zero left out beforehand)."""
    if not rows.shape[0] or not bool(((rows >= 0) & (rows <= 1)).all()):
        return False
    sums = rows.sum(dim=-1)
    return bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-4))


def _train_mode_rows(
    model: nn.Module,
    inputs: Any,
    call: CallFn | None,
    output: OutputFn | None,
    axis: int,
    classes: int,
    kept: Tensor,
) -> Tensor | None:
    """The output's rows in training mode (seeded, the global RNG and the buffers left as they were), as the
    check reads them; None when that run fails or its output does not fit the eval one's."""
    try:
        with torch.random.fork_rng(devices=[]), buffers_kept(model), mode(model, True), torch.no_grad():
            torch.manual_seed(0)
            out = selector(output)((call or default_call)(model, *as_args(inputs)))
            rows = out.movedim(axis, -1).reshape(-1, classes).to(torch.float64)[kept]
    except (
        Exception
    ):  # the training-mode run cannot be read as the eval one (it needs targets, another shape)
        return None
    return rows[rows.ne(0).any(dim=-1)]


def check_init_loss(
    model: Any,
    inputs: Any,
    targets: Tensor,
    classes: int,
    *,
    rel_tol: float = 0.2,
    class_axis: int = -1,
    call: CallFn | None = None,
    output: OutputFn | None = None,
    allow_probabilities: bool = False,
    ignore_index: int = -100,
    priors: Any = None,
) -> float:
    """Check that the cross-entropy loss at initialisation is close to ``log(classes)``.

    An untrained classifier should be unsure: its cross-entropy is about ``log(classes)`` (uniform guessing).
    Much more means over-confident initial logits (a large init or bias on the last layer), so the first
    steps are spent undoing them; much less on the given targets means the output sees the targets.

    The over-confidence verdict does not depend on the targets' luck: it is taken on the loss that uniformly
    random targets would give on average, ``mean(logsumexp(z) - mean(z))`` over the positions, which is never
    below ``log(classes)`` and equals it for equal logits. It is deterministic for a given model and input, so
    a correct model does not fail on a few unlucky targets (the loss on 4 drawn targets of 2 classes strays far
    from ``log 2``). The "sees the targets" verdict uses the targets: it fails only when their loss is below
    that average by more than ``rel_tol * log(classes)`` and by more than random targets stray once in a
    million (Hoeffding's bound on the positions' loss ranges).

    A head whose bias starts at the log class priors (the recipe for imbalanced classes) is confident on purpose:
    pass ``priors=`` (the class frequencies it was set to) and the loss is averaged over targets drawn from the
    priors instead of uniform ones (its own loss, about the priors' entropy, is then well under the bound).

    PyTorch's default init of a ``Linear`` head with a fan-in of 1 or 2 is genuinely over-confident (weights and
    bias up to +-1 per input), and fails this check: that is a finding, not a false alarm.

    Also fails when the output looks like probabilities (all in [0, 1], summing to 1 over the class axis):
    ``nn.CrossEntropyLoss`` wants raw logits, and softmax-then-cross-entropy trains badly even though its loss
    at init is close to ``log(classes)``. Positions whose logits are all exactly zero (padding zeroed by a mask,
    or by the padding of a PackedSequence output) and positions whose target is ``ignore_index`` are left out
    of that test (and the latter of the losses).

    Args:
        model: the model (run in eval mode, without gradients).
        inputs: one input or a tuple of positional inputs.
        targets: class indices, shaped like the output without its class axis (``ignore_index`` at padding).
        classes: the number of classes C.
        rel_tol: accepted relative distance from ``log(classes)``.
        class_axis: the output's class axis (default last); other axes are flattened.
        call, output: as everywhere in ``rnnshapes.testing``.
        allow_probabilities: do not fail on probability-like outputs.
        ignore_index: the target value of positions to leave out (as in ``F.cross_entropy``).
        priors: the class frequencies a prior-initialised head starts at (``classes`` values, normalised here).

    Returns:
        The loss at init on the given targets.

    Raises:
        CheckFailed: with the loss, ``log(classes)`` and the ratio.
    """
    refuse_meta("check_init_loss", model, inputs)
    __tracebackhide__ = True
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    with mode(model, False), torch.no_grad():
        logits = selector(output)((call or default_call)(model, *as_args(inputs)))
    if int(logits.shape[class_axis]) != classes:
        raise fail(
            "loss at init: the output's class axis does not have classes entries.",
            f"{output_name(output)} {describe(logits)} has {int(logits.shape[class_axis])} along class_axis="
            f"{class_axis}, but classes={classes}",
            "set class_axis to the axis with one logit per class (default: the last)",
        )
    flat = logits.movedim(class_axis, -1).reshape(-1, classes).to(torch.float64)
    flat_targets = targets.reshape(-1).to(flat.device).long()
    if flat_targets.numel() != flat.shape[0]:
        raise ValueError(
            f"targets {describe(targets)} do not match the output {describe(logits)} without its class axis "
            f"({flat.shape[0]} positions)"
        )
    expected = math.log(classes)
    kept = flat_targets != ignore_index
    rows, row_targets = flat[kept], flat_targets[kept]
    if rows.shape[0] == 0:
        raise ValueError(f"every target is ignore_index={ignore_index}: there is no position to judge")
    outside = sorted({int(v) for v in row_targets[(row_targets < 0) | (row_targets >= classes)].tolist()})
    if outside:
        raise ValueError(
            f"targets hold {outside[:5]}, outside the classes 0..{classes - 1}: a padding tag must be "
            f"ignore_index (now {ignore_index}); pass ignore_index=<the padding tag>"
        )
    weights = None
    if priors is not None:
        weights = torch.as_tensor(priors, dtype=torch.float64).reshape(-1).to(flat.device)
        if weights.numel() != classes or bool((weights < 0).any()) or not float(weights.sum()) > 0:
            raise ValueError(f"priors must be {classes} class frequencies >= 0, got {describe(priors)}")
        weights = weights / weights.sum()
    real = rows[rows.ne(0).any(dim=-1)]  # all-zero rows are padding, never probabilities
    if not allow_probabilities and _probabilities(real):
        train_rows = (
            _train_mode_rows(model, inputs, call, output, class_axis, classes, kept)
            if isinstance(model, nn.Module)
            else None
        )
        if train_rows is not None and not _probabilities(train_rows):
            raise ValueError(
                "check_init_loss: the output is probabilities in eval mode and logits in training mode (a softmax "
                "applied at inference only, as DeepSpeech's InferenceBatchSoftmax does): the loss is computed on "
                "the training-mode logits, so this is not a fault. The check runs in eval mode: pass "
                "allow_probabilities=True, or call= a function returning the logits"
            )
        padding = flat.shape[0] - real.shape[0]
        skipped = f" ({padding} padded or ignored positions left out)" if padding else ""
        raise fail(
            "loss at init: the output looks like probabilities, not logits.",
            f"every value of {output_name(output)} {describe(logits)} is in [0, 1] and each row sums to 1 "
            f"over the class axis{skipped}",
            "nn.CrossEntropyLoss / F.cross_entropy apply log_softmax themselves: return raw logits (drop the "
            "softmax), or use F.nll_loss on log_softmax outputs; pass allow_probabilities=True if intended",
        )
    lse = torch.logsumexp(rows, dim=-1)
    # the mean loss over random targets: uniform ones, or drawn from the priors a prior-initialised head starts at
    average = float((lse - (rows.mean(dim=-1) if weights is None else rows @ weights)).mean())
    ref = f"log(classes) = log({classes})"
    drawn = "uniformly random targets" if weights is None else "targets drawn from the priors"
    loss = float(nn.functional.cross_entropy(rows, row_targets))
    n = rows.shape[0]
    spread = math.sqrt(float(((rows.amax(-1) - rows.amin(-1)) ** 2).sum()) * math.log(1e6) / (2 * n * n))
    stats = (
        f"over {n} positions of {output_name(output)} {describe(logits)}: the logits have std "
        f"{float(rows.std()) if rows.numel() > 1 else 0.0:.3g} and mean {float(rows.mean()):.3g}"
    )
    if not math.isfinite(average) or average > (1 + rel_tol) * expected:
        raise fail(
            f"loss at init is {average:.4g}, but about {ref} = {expected:.4g} is expected "
            f"(ratio {average / expected:.3g}, allowed up to {1 + rel_tol:g}).",
            f"{average:.4g} is the cross-entropy that {drawn} give on average (it does not "
            f"depend on the targets drawn; {loss:.4g} on the given ones), {stats}",
            "an over-confident start (ratio > 1): shrink the last layer's init or bias (e.g. zero the bias, "
            "scale its weights by 0.1); a Linear head with a fan-in of 1 or 2 is over-confident under PyTorch's "
            "default init"
            + (
                "; if the bias is set to the log class priors on purpose (imbalanced classes), pass priors=<the "
                "class frequencies>"
                if weights is None
                else ""
            ),
        )
    if not math.isfinite(loss) or loss < average - max(rel_tol * expected, spread):
        raise fail(
            f"loss at init is {loss:.4g} on the given targets, far below the {average:.4g} that "
            f"{'random targets' if weights is None else drawn} "
            f"give on average ({ref} = {expected:.4g}; ratio {loss / expected:.3g}).",
            f"random targets stray below that average by more than {max(rel_tol * expected, spread):.3g} "
            f"less than once in a million; {stats}",
            "a loss far below log(classes) on untrained weights means the output can see the targets (a target "
            "passed as an input, or labels leaking through the inputs)",
        )
    return loss
