"""Lesson fixtures of the pytest plugin: each lesson trained to its target once per run and per cache key.

``rnn_lesson(name, device)`` hands a test the lesson's model trained to its target. The cache key is the
lesson's (recipe, target, seed, device type, torch and rnnshapes versions); the cache lives in the run's
temporary folder, which every xdist worker of the run shares: a file lock makes the first worker train and
the others wait, then load its checkpoint (``torch.load(weights_only=True)``) instead of training again.

With ``--rnnshapes-lesson-cache=persistent`` a lesson the run has not seen yet is looked up, under a second
file lock, in pytest's own cache (``.pytest_cache/d/rnnshapes-lessons``) before it is trained, and a
training that reached its target is kept there for later runs. That key adds to the lesson's key what else
decides the weights: the CPU threads, the budget profile (the one-cycle schedules span the budget), the GPU's
name, and a digest of rnnshapes' own source (a changed model, task or training loop under an unchanged
version number). An entry is one checkpoint file written atomically, its summary inside; one that does not
load, or whose recorded key is not the one asked for, is deleted and trained again, never trusted.

Kept apart from ``pytest_plugin`` (which registers these fixtures) because it is the one part that trains;
like the plugin, it imports torch only inside the fixtures.
"""

import functools
import hashlib
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
    reused: bool  # loaded, not trained by this call: from the run's cache or (earlier_run) the persistent one
    checkpoint: str | None
    earlier_run: bool = False  # trained by an earlier run, kept by --rnnshapes-lesson-cache=persistent
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
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _curve_values(result: Any) -> list[float]:
    # the target metric where it is a number (accuracy, loss), else the training loss (the hello lessons' text)
    metric = result.target.metric
    if any(isinstance(p.metrics.get(metric), (int, float)) for p in result.curve):
        return [
            float(p.metrics[metric]) for p in result.curve if isinstance(p.metrics.get(metric), (int, float))
        ]
    return [float(p.train_loss) for p in result.curve]


PERSISTENT_FOLDER = "rnnshapes-lessons"
"""The folder of pytest's cache (``config.cache.mkdir``) that ``--rnnshapes-lesson-cache=persistent`` uses."""

_ENTRY_FORMAT = "rnnshapes-lesson-cache/1"
_SUMMARY_FIELDS = ("reached", "steps", "seconds", "metric", "value", "target", "curve")


@functools.cache
def _source_digest() -> str:
    """A digest of rnnshapes' Python source: what the version number does not say in a development checkout."""
    import rnnshapes

    root = Path(rnnshapes.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def persistent_key(lesson: Any, device: str, seed: int, threads: int, budget_scale: float) -> str:
    """The persistent cache's key: the lesson's ``cache_key`` and what else decides the weights."""
    import torch

    dev = torch.device(device)
    blob = json.dumps(
        {
            "format": _ENTRY_FORMAT,
            "lesson": lesson.cache_key(device, seed),
            "threads": threads if dev.type == "cpu" else None,
            "budget_scale": budget_scale,
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "source": _source_digest(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _load_entry(path: Path, lesson: Any, key: str, device: str) -> tuple[Any, dict[str, Any]]:
    """The model and summary of a persistent entry; ``ValueError`` (with the reason) unless it is sound."""
    from rnnshapes.core._errors import CheckpointError
    from rnnshapes.train import load_checkpoint

    try:
        model, meta = load_checkpoint(  # torch.load(weights_only=True), class and configuration checked
            path,
            expect_class=lesson.model_class.__name__,
            expect_config=lesson.recipe.model,
            map_location=device,
        )
    except CheckpointError as e:
        raise ValueError(str(e)) from None
    summary = meta.get("lesson")
    if meta.get("format") != _ENTRY_FORMAT or meta.get("key") != key or not isinstance(summary, dict):
        raise ValueError(f"{path} was not written for key {key}")
    if any(f not in summary for f in _SUMMARY_FIELDS) or summary["reached"] is not True:
        raise ValueError(f"{path} lacks a summary of a training that reached its target")
    return model, summary


def train_or_load(
    name: str,
    device: str,
    seed: int,
    threads: int,
    budget_scale: float,
    directory: Path,
    persistent: Path | None = None,
) -> tuple[TrainedLesson, str]:
    """Train lesson ``name`` once for this cache key (under a file lock), or load what another process trained.

    ``persistent``: the persistent cache's folder, looked up (under its own lock, taken after the run's) when
    the run has not seen the lesson yet. Returns the lesson and where it came from: ``"trained"`` (by this
    call), ``"run"`` (this run's cache) or ``"earlier run"`` (the persistent cache).
    """
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
            return TrainedLesson(**data, reused=True, model=model), "run"
        if persistent is None or checkpoint is None:
            trained = _train(lesson, device, seed, threads, budget_scale, checkpoint)
            _write_json(summary, _summary_data(trained))
            return trained, "trained"
        entry_key = persistent_key(lesson, device, seed, threads, budget_scale)
        entry = persistent / f"{name}-{entry_key}.pt"
        with FileLock(str(persistent / f".{name}-{entry_key}.lock")):
            damaged = None
            if entry.exists():
                try:
                    model, found = _load_entry(entry, lesson, entry_key, device)
                except ValueError as e:
                    damaged = str(e)
                    entry.unlink(missing_ok=True)  # never trusted: trained again below
                else:
                    found = {f: found[f] for f in _SUMMARY_FIELDS}
                    saved = str(save_checkpoint(checkpoint, model, {"lesson": found}))  # where the run's are
                    trained = TrainedLesson(
                        name=name,
                        device=device,
                        seed=seed,
                        **found,
                        reused=True,
                        checkpoint=saved,
                        earlier_run=True,
                        model=model,
                    )
                    _write_json(summary, _summary_data(trained))
                    return trained, "earlier run"
            trained = _train(lesson, device, seed, threads, budget_scale, checkpoint)
            if trained.reached and trained.model is not None:
                meta = {
                    "format": _ENTRY_FORMAT,
                    "key": entry_key,
                    "lesson": {f: getattr(trained, f) for f in _SUMMARY_FIELDS},
                }
                save_checkpoint(entry, trained.model, meta)  # atomic: a temporary file renamed into place
            _write_json(summary, _summary_data(trained))
            return trained, "trained" if damaged is None else "trained (cache entry unusable)"


def _summary_data(trained: TrainedLesson) -> dict[str, Any]:
    return {k: v for k, v in asdict(trained).items() if k not in ("model", "reused")}


def _train(
    lesson: Any, device: str, seed: int, threads: int, budget_scale: float, checkpoint: Path | None
) -> TrainedLesson:
    from rnnshapes.train import save_checkpoint

    result = lesson.run(device=device, seed=seed, threads=threads, progress=False, budget_scale=budget_scale)
    saved = None
    if checkpoint is not None and result.reached and result.model is not None:
        saved = str(save_checkpoint(checkpoint, result.model, result.summary()))
    return TrainedLesson(
        name=lesson.name,
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

    Seed, CPU threads and the budget profile come from ``--rnnshapes-seed/-threads/-budget``; the seed is the
    base seed itself (no per-test offset), so every test of a run gets the same trained model. Each call
    hands over a model of its own, in eval mode on ``device``. A training done by this test is recorded for
    the end-of-run table (and the failure section), and so is a lesson loaded from an earlier run
    (``--rnnshapes-lesson-cache=persistent``); one reused within the run is not. Check ``trained.reached``
    (or call ``trained.assert_reached()``) before trusting the model.
    """
    s = settings(request.config)
    persistent = None
    if s.lesson_cache == "persistent":
        persistent = request.config.cache.mkdir(PERSISTENT_FOLDER)

    def get(name: str, device: str = "cpu") -> TrainedLesson:
        previous = os.environ.get("RNNSHAPES_CHECKPOINTS")
        os.environ["RNNSHAPES_CHECKPOINTS"] = str(rnn_lesson_dir)  # the checkpoints live in the run's cache
        try:
            trained, origin = train_or_load(
                name, device, s.seed, s.threads, s.budget.steps, rnn_lesson_dir, persistent
            )
        finally:
            if previous is None:
                os.environ.pop("RNNSHAPES_CHECKPOINTS", None)
            else:
                os.environ["RNNSHAPES_CHECKPOINTS"] = previous
        if trained.model is not None:
            trained.model.eval()
        if not trained.reached or origin != "run":
            suffix = {"run": " (reused)", "earlier run": " (from an earlier run)"}.get(origin, "")
            if origin.startswith("trained ("):
                suffix = " " + origin.removeprefix("trained ")  # "(cache entry unusable)": trained again
            record = make_record(
                name=f"lesson {name}{suffix}",
                device=device,
                steps=trained.steps,
                seconds=trained.seconds,
                metric=trained.value,
                reached=trained.reached,
                mode=trained.target.split(" ")[1],
                curve=trained.curve,
                target=_goal(trained.target),
            )
            if origin == "earlier run":
                record["earlier_run"] = True  # counted apart from the trainings in the end-of-run table
            record_training(request, record)
        return trained

    return get


def _goal(described: str) -> Any:
    goal = described.split(" ", 2)[2]
    try:
        return float(goal)
    except ValueError:
        return goal
