"""Lesson fixtures of the pytest plugin: each lesson trained to its target once per run and per cache key.

``rnn_lesson(name, device)`` hands a test the lesson's model trained to its target. The cache key is the
lesson's (recipe, target, seed, device type, torch and rnnshapes versions); the cache lives in the run's
temporary folder, which every xdist worker of the run shares: a file lock makes the first worker train and
the others wait, then load its checkpoint (``torch.load(weights_only=True)``) instead of training again.

Kept apart from ``pytest_plugin`` (which registers these fixtures) because it is the one part that trains;
like the plugin, it imports torch only inside the fixtures.
"""

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ._options import settings
from ._report import make_record, record_training


@dataclass
class TrainedLesson:
    """A lesson's model trained to its target, and how it got there (``rnn_lesson``'s result)."""

    name: str
    device: str
    seed: int
    reached: bool
    steps: int
    seconds: float
    metric: str
    value: Any
    target: str
    curve: list[float]
    reused: bool  # loaded from the run's cache (trained by another test or xdist worker)
    checkpoint: str | None
    model: Any = field(default=None, repr=False)

    def assert_reached(self) -> None:
        """Fail with the curve and a rerun line when the target was not reached within the budget."""
        __tracebackhide__ = True
        if self.reached:
            return
        from rnnshapes.testing import sparkline

        curve = (
            f"curve: {sparkline(self.curve)} ({len(self.curve)} evaluations)" if self.curve else "no curve"
        )
        pytest.fail(
            f"lesson {self.name!r} on {self.device} did not reach {self.target} in {self.steps} steps "
            f"({self.seconds:.1f} s): last {self.metric}={self.value}\n{curve}\n"
            f"rerun: rnnshapes train {self.name} --device {self.device} --seed {self.seed}",
            pytrace=False,
        )


def _summary_path(directory: Path, name: str, key: str) -> Path:
    return directory / f"{name}-{key}.json"


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f)
    os.replace(tmp, path)


def _curve_values(result: Any) -> list[float]:
    # the target metric where it is a number (accuracy, loss), else the training loss (the hello lessons' text)
    metric = result.target.metric
    if any(isinstance(p.metrics.get(metric), (int, float)) for p in result.curve):
        return [
            float(p.metrics[metric]) for p in result.curve if isinstance(p.metrics.get(metric), (int, float))
        ]
    return [float(p.train_loss) for p in result.curve]


def train_or_load(
    name: str, device: str, seed: int, threads: int, budget_scale: float, directory: Path
) -> TrainedLesson:
    """Train lesson ``name`` once for this cache key (under a file lock), or load what another process trained."""
    from filelock import FileLock

    from rnnshapes import lessons
    from rnnshapes.train import load_checkpoint, save_checkpoint

    lesson = lessons.get(name)
    key = lesson.cache_key(device, seed) if lesson.recipe is not None else f"{name}-checks"
    summary = _summary_path(directory, name, key)
    checkpoint = lessons.checkpoint_path(lesson, device, seed) if lesson.recipe is not None else None
    with FileLock(str(directory / f".{name}-{key}.lock")):
        if summary.exists():
            data = json.loads(summary.read_text())
            model = None
            if data["checkpoint"] is not None:
                model, _ = load_checkpoint(data["checkpoint"], map_location=device)
            return TrainedLesson(**data, reused=True, model=model)
        result = lesson.run(
            device=device, seed=seed, threads=threads, progress=False, budget_scale=budget_scale
        )
        saved = None
        if checkpoint is not None and result.reached and result.model is not None:
            saved = str(save_checkpoint(checkpoint, result.model, result.summary()))
        trained = TrainedLesson(
            name=name,
            device=device,
            seed=seed,
            reached=result.reached,
            steps=result.steps,
            seconds=round(result.seconds, 3),
            metric=result.target.metric,
            value=result.metric,
            target=result.target.describe(),
            curve=_curve_values(result),
            reused=False,
            checkpoint=saved,
            model=result.model,
        )
        data = {k: v for k, v in asdict(trained).items() if k not in ("model", "reused")}
        _write_json(summary, data)
        return trained


@pytest.fixture(scope="session")
def rnn_lesson_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's lesson cache: a folder every xdist worker of this run shares (checkpoints + summaries).

    Setting ``RNNSHAPES_CHECKPOINTS`` to it lets a subprocess (``rnnshapes predict``) reuse the models.
    """
    base = tmp_path_factory.getbasetemp()
    # an xdist worker's basetemp is a folder of the run's: share the run's. Asked of the config, not of the
    # PYTEST_XDIST_WORKER variable, which a pytest started by a worker (pytester, subprocess) inherits
    root = base.parent if hasattr(request.config, "workerinput") else base
    directory = root / "rnnshapes-lessons"
    directory.mkdir(exist_ok=True)
    return directory


@pytest.fixture
def rnn_lesson(request: pytest.FixtureRequest, rnn_lesson_dir: Path) -> Callable[..., TrainedLesson]:
    """``rnn_lesson(name, device="cpu")``: the lesson's model trained to its target, once per run and key.

    Seed, CPU threads and the budget profile come from ``--rnnshapes-seed/-threads/-budget``. A training
    done by this test is recorded for the end-of-run table (and the failure section); a reused one is not.
    Check ``trained.reached`` (or call ``trained.assert_reached()``) before trusting the model.
    """
    s = settings(request.config)

    def get(name: str, device: str = "cpu") -> TrainedLesson:
        previous = os.environ.get("RNNSHAPES_CHECKPOINTS")
        os.environ["RNNSHAPES_CHECKPOINTS"] = str(rnn_lesson_dir)  # the checkpoints live in the run's cache
        try:
            trained = train_or_load(name, device, s.seed, s.threads, s.budget.steps, rnn_lesson_dir)
        finally:
            if previous is None:
                os.environ.pop("RNNSHAPES_CHECKPOINTS", None)
            else:
                os.environ["RNNSHAPES_CHECKPOINTS"] = previous
        if not trained.reached or not trained.reused:
            value = trained.value
            record_training(
                request,
                make_record(
                    name=f"lesson {name}" + (" (reused)" if trained.reused else ""),
                    device=device,
                    steps=trained.steps,
                    seconds=trained.seconds,
                    metric=value,
                    reached=trained.reached,
                    mode=trained.target.split(" ")[1],
                    curve=trained.curve,
                    target=_goal(trained.target),
                ),
            )
        return trained

    return get


def _goal(described: str) -> Any:
    goal = described.split(" ", 2)[2]
    try:
        return float(goal)
    except ValueError:
        return goal
