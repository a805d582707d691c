"""The lesson registry: each lesson is a model, its data, a recipe and a target, trained by ``fit``.

Everything about one lesson lives in one ``Lesson`` entry (config in one place); the per-lesson modules only
say how to build its task. ``Lesson.run`` trains (or, for the shape lessons, runs the shape checks) and
returns a ``TrainResult``; ``trained`` reuses a checkpoint from the user cache when one fits.
"""

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import __version__
from ..core._errors import CheckpointError
from ..data import cache_dir
from ..train import (
    Budget,
    Target,
    TrainResult,
    fit,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    torch_threads,
)


@dataclass(frozen=True)
class Recipe:
    """How a lesson trains: the model's configuration and the optimisation (one place, one dataclass)."""

    model: dict[str, Any]
    lr: float
    batch_size: int = 1
    optimizer: str = "adam"  # "adam" | "sgd"
    schedule: str | None = None  # None | "onecycle"
    clip: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Task:
    """What ``fit`` needs for one run, built on the run's device."""

    model: nn.Module
    batches: Iterator[Any]
    loss_fn: Callable[[nn.Module, Any], Tensor]
    evaluate: Callable[[nn.Module], dict[str, Any]]
    train_evaluate: Callable[[nn.Module], dict[str, Any]] | None = None
    """What ``fit`` evaluates during training, when cheaper than ``evaluate`` (a screen on a subset first)."""


@dataclass(frozen=True)
class Lesson:
    """One lesson of the course.

    Attributes:
        name: the registry key (``rnnshapes train NAME``).
        course: the course's file number ("12_2").
        title: a short title.
        teaches: what the lesson teaches, in one sentence.
        model_class: the ``rnnshapes.models`` class it trains (``None`` for shape lessons).
        recipe: the configuration and optimisation (``None`` for shape lessons).
        target: what "converged" means.
        budget: the step / wall-clock budget (on this project's 2-core CPU, one thread).
        build_task: ``(lesson, device, generator) -> Task`` (trainable lessons).
        run_checks: ``(device) -> dict`` of check name -> passed (shape lessons).
        time_goals: seconds to the target that the project aims for, per device type (``{"cpu": 30.0}``),
            measured on an otherwise idle machine (the budget's 2-core CPU, one thread). They are reported
            next to each run, never enforced: reaching the target decides "met", so load cannot make a
            run fail.
    """

    name: str
    course: str
    title: str
    teaches: str
    model_class: type[nn.Module] | None
    recipe: Recipe | None
    target: Target
    budget: Budget | None
    build_task: Callable[["Lesson", torch.device, torch.Generator], Task] | None = None
    run_checks: Callable[[torch.device], dict[str, bool]] | None = None
    time_goals: Mapping[str, float] = field(default_factory=dict)

    def describe_time_goal(self) -> str:
        """``"30 s cpu, 5 s cuda"`` (``""`` without a time goal)."""
        return ", ".join(f"{seconds:g} s {device}" for device, seconds in self.time_goals.items())

    @property
    def trainable(self) -> bool:
        return self.build_task is not None

    def build_model(self) -> nn.Module:
        """A fresh, untrained model with the lesson's configuration."""
        assert self.model_class is not None and self.recipe is not None, f"{self.name} has no model to build"
        return self.model_class(**self.recipe.model)

    def run(
        self,
        *,
        device: str | torch.device = "cpu",
        seed: int = 0,
        threads: int | None = 1,
        progress: bool | None = None,
        budget_scale: float = 1.0,
        stop_at_target: bool = True,
    ) -> TrainResult:
        """Train the lesson to its target (or run its shape checks) and return the result.

        Args:
            device: "cpu", "cuda", "cuda:1", ...
            seed: seeds python and torch (CUDA included) before the model and the data order are made.
            threads: CPU threads for the run (restored afterwards).
            progress: a progress bar (``None``: only on a terminal).
            budget_scale: multiply the step and time budget (a slower machine, a quick smoke run).
            stop_at_target: ``False`` trains the whole budget (benchmarks, curves).
        """
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"lesson {self.name!r}: device {device!r} asked for, but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}); train on the CPU (device='cpu'; --device cpu on the command line)"
            )
        seed_everything(seed)
        if self.run_checks is not None:
            return self._run_shape_lesson(dev, seed, threads)
        assert self.build_task is not None and self.budget is not None and self.recipe is not None
        with torch_threads(threads):
            task = self.build_task(self, dev, torch.Generator().manual_seed(seed))
        budget = self.budget.scaled(budget_scale) if budget_scale != 1.0 else self.budget
        optimizer, scheduler = _optimizer(self.recipe, task.model, budget)
        result = fit(
            task.model,
            task.batches,
            task.loss_fn,
            task.train_evaluate or task.evaluate,
            self.target,
            budget,
            optimizer=optimizer,
            scheduler=scheduler,
            clip=self.recipe.clip,
            name=self.name,
            device=dev,
            seed=seed,
            threads=threads,
            progress=progress,
            stop_at_target=stop_at_target,
        )
        if task.train_evaluate is not None and self.target.metric not in result.final:
            # the run ended on a screened evaluation (its budget ran out): report the whole evaluation
            task.model.eval()
            with torch.no_grad(), torch_threads(threads):
                result.final = {**result.final, **task.evaluate(task.model)}
            if result.curve:
                result.curve[-1].metrics = result.final
            result.reached = result.reached or self.target.met(result.final)
        return result

    def evaluate(self, model: nn.Module, device: str | torch.device = "cpu") -> dict[str, Any]:
        """Evaluate a model of this lesson afresh on its evaluation data (eval mode, no gradients)."""
        assert self.build_task is not None, f"{self.name} is a shape lesson: nothing to evaluate"
        task = self.build_task(self, torch.device(device), torch.Generator().manual_seed(0))
        model.eval()
        with torch.no_grad():
            return task.evaluate(model)

    def _run_shape_lesson(self, dev: torch.device, seed: int, threads: int | None) -> TrainResult:
        import time

        assert self.run_checks is not None
        start = time.perf_counter()
        with torch_threads(threads):
            checks = self.run_checks(dev)
        failed = [name for name, ok in checks.items() if not ok]
        verdict = "all passed" if not failed else "failed: " + ", ".join(failed)
        return TrainResult(
            name=self.name,
            reached=not failed,
            steps=0,
            seconds=time.perf_counter() - start,
            target=self.target,
            final={"checks": verdict, "count": len(checks)},
            curve=[],
            device=str(dev),
            seed=seed,
            threads=threads or torch.get_num_threads(),
        )

    def cache_key(self, device: str | torch.device, seed: int) -> str:
        """What a trained model depends on: lesson, recipe, target, seed, device type, torch and rnnshapes."""
        assert self.recipe is not None
        blob = json.dumps(
            {
                "lesson": self.name,
                "recipe": asdict(self.recipe),
                "target": asdict(self.target),
                "seed": seed,
                "device": torch.device(device).type,
                "torch": torch.__version__,
                "rnnshapes": __version__,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def trained(
        self,
        *,
        device: str | torch.device = "cpu",
        seed: int = 0,
        threads: int | None = 1,
        progress: bool | None = None,
        cache: bool = True,
    ) -> tuple[nn.Module, dict[str, Any]]:
        """The lesson's model trained to its target: from the checkpoint cache if it fits, else trained now.

        Returns ``(model, summary)``; the model is in eval mode on ``device``. A trained model is saved only
        when it reached its target.
        """
        path = checkpoint_path(self, device, seed)
        if cache and path.exists():
            try:
                model, meta = load_checkpoint(
                    path,
                    expect_class=self.model_class.__name__ if self.model_class else None,
                    expect_config=self.recipe.model if self.recipe else None,
                    map_location=device,
                )
                return model, meta
            except CheckpointError:
                path.unlink(missing_ok=True)  # stale or corrupt: train again
        result = self.run(device=device, seed=seed, threads=threads, progress=progress)
        assert result.model is not None
        summary = result.summary()
        if cache and result.reached:
            save_checkpoint(path, result.model, summary)
        result.model.eval()
        return result.model, summary


def checkpoint_path(lesson: Lesson, device: str | torch.device, seed: int) -> Path:
    """Where a lesson's trained model is cached: ``<cache>/checkpoints/<lesson>-<key>.pt``."""
    root = Path(os.environ.get("RNNSHAPES_CHECKPOINTS") or cache_dir() / "checkpoints")
    return root / f"{lesson.name}-{lesson.cache_key(device, seed)}.pt"


def _optimizer(recipe: Recipe, model: nn.Module, budget: Budget) -> tuple[torch.optim.Optimizer, Any]:
    params = model.parameters()
    opt: torch.optim.Optimizer
    if recipe.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=recipe.lr)
    elif recipe.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.extra.get("momentum", 0.0))
    else:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}")
    scheduler = None
    if recipe.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=recipe.lr, total_steps=budget.max_steps, pct_start=recipe.extra.get("pct_start", 0.3)
        )
    elif recipe.schedule is not None:
        raise ValueError(f"unknown schedule {recipe.schedule!r}")
    return opt, scheduler
