"""`fit`: the one training loop behind the command line, the pytest fixtures and the benchmarks.

It knows nothing of particular lessons: it is handed a model, an endless iterator of batches, a loss
function, an evaluation function, a target and a budget, and it returns a `TrainResult`.
"""

import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..core._errors import TrainingError

Metric = float | str


@dataclass(frozen=True)
class Target:
    """What "converged" means: ``metric`` compared with ``goal``.

    Args:
        metric: a key of the evaluation's result ("accuracy", "loss", "text", ...).
        goal: the threshold (or the exact string for ``mode="equal"``).
        mode: ``"max"`` (reach at least ``goal``), ``"min"`` (at most) or ``"equal"`` (exactly).
    """

    metric: str
    goal: Metric
    mode: Literal["max", "min", "equal"] = "max"

    def met(self, metrics: dict[str, Metric]) -> bool:
        value = metrics.get(self.metric)
        if value is None:
            return False
        if self.mode == "equal":
            return value == self.goal
        assert isinstance(value, (int, float)) and isinstance(self.goal, (int, float))
        return value >= self.goal if self.mode == "max" else value <= self.goal

    def describe(self) -> str:
        if self.mode == "equal":
            return f"{self.metric} == {self.goal!r}"
        return f"{self.metric} {'>=' if self.mode == 'max' else '<='} {self.goal:g}"


@dataclass(frozen=True)
class Budget:
    """How far ``fit`` may go, and how often it looks.

    At most ``max_steps`` optimizer steps and ``max_seconds`` of wall clock (a safety net: a convergence
    test relies on the step budget, which a seeded CPU run meets identically on any machine load). The
    model is evaluated every ``eval_every`` steps from step ``eval_from`` on, and at the last step.
    """

    max_steps: int
    max_seconds: float = float("inf")
    eval_every: int = 1
    eval_from: int = 0

    def scaled(self, factor: float) -> "Budget":
        """The same budget with steps and seconds multiplied by ``factor`` (for slower machines)."""
        return Budget(
            max(1, int(self.max_steps * factor)), self.max_seconds * factor, self.eval_every, self.eval_from
        )


@dataclass
class CurvePoint:
    """One point of a training curve: every ``eval_every`` steps; ``metrics`` is empty before ``eval_from``."""

    step: int
    seconds: float
    train_loss: float  # mean training loss since the previous point
    metrics: dict[str, Metric]


@dataclass
class TrainResult:
    """What ``fit`` returns: whether the target was reached, how fast, and the curve that shows it."""

    name: str
    reached: bool
    steps: int
    seconds: float
    target: Target
    final: dict[str, Metric]
    curve: list[CurvePoint]
    device: str
    seed: int
    threads: int
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def metric(self) -> Metric | None:
        return self.final.get(self.target.metric)

    def summary(self) -> dict[str, Any]:
        """A plain, JSON-able row (the model left out)."""
        return {
            "name": self.name,
            "device": self.device,
            "seed": self.seed,
            "reached": self.reached,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "metric": self.target.metric,
            "value": self.metric,
            "target": self.target.describe(),
        }


def _mean_finite(pending: list[Tensor], name: str, step: int, curve: list[CurvePoint]) -> float:
    """The mean of the losses since the last curve point (read now: one device sync per point, not per step);
    a NaN or infinite one stops training with the step it appeared at."""
    losses = torch.stack(pending).float().cpu()
    bad = ~torch.isfinite(losses)
    if bad.any():
        first = int(bad.nonzero()[0])
        raise TrainingError(
            f"{name}: the training loss became {losses[first].item()} at step {step - len(losses) + 1 + first} "
            f"(last mean losses: {[round(p.train_loss, 4) for p in curve[-3:]]}). Lower the learning rate, clip "
            "gradients, or check the data for NaNs; training stopped so nothing was saved."
        )
    return float(losses.mean())


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` CPU threads (``None``: leave them alone), restored afterwards."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed python, torch and (when present) every CUDA device."""
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA devices


def fit(
    model: nn.Module,
    batches: Iterator[Any],
    loss_fn: Callable[[nn.Module, Any], Tensor],
    evaluate: Callable[[nn.Module], dict[str, Metric]],
    target: Target,
    budget: Budget,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    clip: float | None = None,
    name: str = "model",
    device: str | torch.device = "cpu",
    seed: int = 0,
    threads: int | None = 1,
    progress: bool | None = None,
    stop_at_target: bool = True,
) -> TrainResult:
    """Train until ``target`` is met (checked every ``budget.eval_every`` steps) or the budget runs out.

    Args:
        model: already on ``device``; put in train mode for steps and eval mode for ``evaluate``.
        batches: an endless iterator of batches, already on ``device`` (data moves once, not per step).
        loss_fn: ``loss_fn(model, batch) -> scalar loss``.
        evaluate: ``evaluate(model) -> {"metric": value, ...}``, run under ``torch.no_grad()``.
        target: when to stop.
        budget: step and wall-clock limits, and the evaluation cadence.
        optimizer, scheduler, clip: the recipe (``scheduler.step()`` after every optimizer step;
            ``clip``: max gradient norm).
        name, device, seed: recorded in the result (seed the run with ``seed_everything`` before building
            the model and data).
        threads: the CPU thread count for the run (tiny RNNs run 10-80x faster on one thread when anything
            else runs), restored afterwards; ``None`` leaves it alone.
        progress: a tqdm bar; ``None`` = only when stderr is a terminal.
        stop_at_target: ``False`` trains the whole budget (for benchmarks and curves).

    Returns:
        A ``TrainResult`` (``reached`` is False when the budget ran out first).

    Raises:
        TrainingError: the loss became NaN or infinite (with the step and the last finite losses).
    """
    with torch_threads(threads):  # restored afterwards, also on error
        show = sys.stderr.isatty() if progress is None else progress
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=budget.max_steps, desc=name, unit="step", leave=False, file=sys.stderr)
        curve: list[CurvePoint] = []
        pending: list[Tensor] = []  # detached losses since the last curve point (no per-step device sync)
        reached = False
        metrics: dict[str, Metric] = {}
        step = 0
        start = time.perf_counter()
        try:
            for step in range(1, budget.max_steps + 1):  # noqa: B007
                model.train()
                loss = loss_fn(model, next(batches))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                pending.append(loss.detach())
                elapsed = time.perf_counter() - start
                last = step == budget.max_steps or elapsed > budget.max_seconds
                evaluating = (step >= budget.eval_from and step % budget.eval_every == 0) or last
                if step % budget.eval_every == 0 or evaluating:  # a curve point: mean loss since the last
                    mean_loss = _mean_finite(pending, name, step, curve)
                    pending.clear()
                    if not evaluating:  # before eval_from: the loss curve only
                        curve.append(CurvePoint(step, time.perf_counter() - start, mean_loss, {}))
                if evaluating:
                    model.eval()
                    with torch.no_grad():
                        metrics = evaluate(model)
                    point = CurvePoint(step, time.perf_counter() - start, mean_loss, metrics)
                    curve.append(point)
                    if bar is not None:
                        bar.set_postfix(
                            {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in metrics.items()}
                        )
                    if target.met(metrics):
                        reached = True
                        if stop_at_target:
                            break
                if bar is not None:
                    bar.update(1)
                if elapsed > budget.max_seconds:
                    break
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - start
        used_threads = torch.get_num_threads()
    return TrainResult(
        name=name,
        reached=reached,
        steps=step,
        seconds=seconds,
        target=target,
        final=metrics,
        curve=curve,
        device=str(device),
        seed=seed,
        threads=used_threads,
        model=model,
    )
