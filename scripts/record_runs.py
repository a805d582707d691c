"""Record one training run of every trainable lesson into docs/runs/<lesson>.json, for the docs' lesson pages.

Each lesson is trained once, seed 0, on the CPU with one torch thread (what the lesson budgets are measured
for). The hello lessons (a short step budget with no wall-clock limit, under a second) train their whole
budget, so that their curve also shows what happens after the target is met; the others stop at their
target. The JSON holds what the docs quote: the recipe, the target, whether and when it was reached, every
evaluation point of the curve, and the machine it ran on. The docs build only reads these files (it never
trains); re-record after changing a recipe with

    python scripts/record_runs.py && python scripts/plot_runs.py

or one lesson with ``python scripts/record_runs.py --lesson names``. The lesson data must be findable
(``RNNSHAPES_DATA=/path/to/data``).
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "runs"
SEED = 0
THREADS = 1
FORMAT = 1  # bump when the JSON layout changes (docs/_ext/docs_support.py reads it)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, Any]:
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": usable,
        "torch_threads": THREADS,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
    }


def first_reached(curve: list[dict[str, Any]], target: Any) -> dict[str, Any] | None:
    """The first evaluation point that meets the target (``None``: never)."""
    return next((p for p in curve if target.met(p["metrics"])), None)


def record(name: str, full_budget: bool | None = None) -> dict[str, Any]:
    from rnnshapes import lessons

    lesson = lessons.get(name)
    assert lesson.trainable and lesson.budget is not None and lesson.recipe is not None
    if full_budget is None:
        # a budget without a wall-clock limit is a few hundred tiny steps: train it all, for the curve
        full_budget = lesson.budget.max_seconds == float("inf")
    started = time.perf_counter()
    result = lesson.run(
        device="cpu", seed=SEED, threads=THREADS, progress=False, stop_at_target=not full_budget
    )
    wall = time.perf_counter() - started
    curve = [
        {
            "step": p.step,
            "seconds": round(p.seconds, 3),
            "train_loss": round(p.train_loss, 5),
            "metrics": p.metrics,
        }
        for p in result.curve
    ]
    hit = first_reached(curve, lesson.target)
    budget = dataclasses.asdict(lesson.budget)
    if budget["max_seconds"] == float("inf"):
        budget["max_seconds"] = None  # JSON has no infinity
    return {
        "format": FORMAT,
        "lesson": lesson.name,
        "course": lesson.course,
        "title": lesson.title,
        "model": lesson.model_class.__name__ if lesson.model_class else None,
        "recipe": dataclasses.asdict(lesson.recipe),
        "target": {
            "metric": lesson.target.metric,
            "goal": lesson.target.goal,
            "mode": lesson.target.mode,
            "text": lesson.target.describe(),
        },
        "budget": budget,
        "stop_at_target": not full_budget,
        "seed": SEED,
        "device": result.device,
        "reached": result.reached,
        # where the target was first met (None if never); for a stop-at-target run that is the run's end
        "reached_at": None if hit is None else {"step": hit["step"], "seconds": hit["seconds"]},
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "wall_seconds": round(wall, 3),  # including loading the data and building the model
        "final": result.final,
        "curve": curve,
        "machine": machine(),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a temporary file in the same folder, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, allow_nan=False)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; these files are published
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    from rnnshapes import lessons

    trainable = [n for n in lessons.names() if lessons.get(n).trainable]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lesson", action="append", choices=trainable, help="record only this lesson (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=RUNS, help=f"folder for the JSON files (default: {RUNS})")
    args = parser.parse_args(argv)
    for name in args.lesson or trainable:
        data = record(name)
        write_json(args.out / f"{name}.json", data)
        metric = data["target"]["metric"]
        print(
            f"{name:16s} reached={data['reached']!s:5s} steps={data['steps']:5d} "
            f"seconds={data['seconds']:7.2f} {metric}={data['final'].get(metric)!r}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
