"""The names lesson's accuracy-vs-seconds frontier: recipes as points, measured on one torch thread.

Three stages (``--stage``), each appending to one JSON file (``--out``, default
``benchmarks/results/names-frontier/cpu-epyc-2core.json``; a rerun of a recipe and seed replaces its row):

  curve    each recipe trained with seed 0 (``--seeds`` for more) until it first meets 85% on the whole test
           set, or to the end of its schedule: the step it met 85% at, its best accuracy, and its *training*
           seconds (the whole test set is evaluated every ``eval_every`` steps from ``eval_from`` on, and
           that evaluation's time is taken out, so that the point is the recipe's, not the cadence's).
  shipped  the recipes exactly as a lesson would run them (stop at the target, their own evaluation
           cadence and screen), interleaved seed by seed with the current lesson recipe ("lesson"), so
           that machine load hits both alike: wall seconds to the target and the paired ratio per seed.
  speed    milliseconds per training step of each recipe's model on its own batches (shape checks on),
           interleaved in rounds, against the lesson recipe's; ``--unchecked`` adds the same models with
           the shape check bypassed (what the check costs).

    python benchmarks/bench_names_frontier.py --stage curve --recipes lesson,bucket
    python benchmarks/bench_names_frontier.py --stage shipped --recipes lesson,fast --seeds 4
    python benchmarks/bench_names_frontier.py --stage speed --recipes lesson,fast --unchecked
    python benchmarks/bench_names_frontier.py --list

The course's own recipe (13_2, six epochs; ``bench_lessons.py``'s re-implementation) is the point
``course`` of the curve stage. ``benchmarks/plot_names_frontier.py`` draws the saved points.
"""

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rnnshapes import lessons
from rnnshapes.lessons._registry import Lesson, Recipe, Task
from rnnshapes.lessons._tasks import names_model_config, names_task
from rnnshapes.train import Budget

HERE = Path(__file__).resolve().parent
OUT = (
    HERE / "results" / "names-frontier" / "cpu-epyc-2core.json"
)  # a folder of its own: docs_support renders results/*.json as run.py files
GOAL = 0.85


def recipe(
    *,
    embed: int = 128,
    hidden: int = 256,
    lr: float = 5e-3,
    batch: int = 128,
    steps: int = 525,
    pct_start: float = 0.3,
    bucket: bool = False,
    screen: tuple[int, float] | None = None,
    eval_every: int = 27,
    eval_from: int = 351,
    note: str = "",
) -> dict[str, Any]:
    return {k: v for k, v in locals().items()}


RECIPES: dict[str, dict[str, Any]] = {
    # the lesson's recipe before this sweep: 85.24% at step 378 (seed 0)
    "lesson": recipe(note="the lesson before this sweep"),
    # the same training, with the batches cut by length: fewer time steps per batch
    "bucket": recipe(bucket=True),
    "bucket-e64": recipe(bucket=True, embed=64),
    "bucket-e32": recipe(bucket=True, embed=32),
    "bucket-h192": recipe(bucket=True, embed=64, hidden=192),
    "bucket-h128": recipe(bucket=True, embed=64, hidden=128),
    "bucket-s420": recipe(bucket=True, steps=420),
    "bucket-s350": recipe(bucket=True, steps=350),
    "bucket-s300": recipe(bucket=True, steps=300),
    "bucket-b256": recipe(bucket=True, batch=256, lr=8e-3, steps=263),
    "bucket-b256-s220": recipe(bucket=True, batch=256, lr=8e-3, steps=220),
    "bucket-lr8": recipe(bucket=True, lr=8e-3, steps=420),
    "bucket-e64-s420": recipe(bucket=True, embed=64, steps=420),
    "bucket-e64-s350": recipe(bucket=True, embed=64, steps=350),
    "bucket-h192-s420": recipe(bucket=True, embed=64, hidden=192, steps=420),
    "bucket-h192-lr8": recipe(bucket=True, embed=64, hidden=192, lr=8e-3),
    # what the lesson ships since this sweep: bucket-h192 with a screened evaluation every 9 steps from 387
    "names": recipe(
        bucket=True, embed=64, hidden=192, screen=(1000, 0.015), eval_every=9, eval_from=387, note="shipped"
    ),
    "h192": recipe(embed=64, hidden=192),
    "bucket-h192-e32": recipe(bucket=True, embed=32, hidden=192),
    "bucket-h160": recipe(bucket=True, embed=64, hidden=160),
    "bucket-h128-s700": recipe(bucket=True, embed=64, hidden=128, steps=700, lr=8e-3),
    "bucket-h192-b256": recipe(bucket=True, embed=64, hidden=192, batch=256, lr=8e-3, steps=263),
    "bucket-h192-s600": recipe(bucket=True, embed=64, hidden=192, steps=600),
}


def build(name: str, spec: dict[str, Any], *, shipped: bool) -> Lesson:
    """The names lesson with the recipe ``spec``. Not shipped (the curve stage): every 9 steps (of 128
    names) from 40% of its schedule on, a screen of 1,000 test names, and the whole test set when the screen
    is within 1.5 points of 85%."""
    base = lessons.get("names")
    extra: dict[str, Any] = {}
    if spec["bucket"]:
        extra["bucket"] = True
    if spec["pct_start"] != 0.3:
        extra["pct_start"] = spec["pct_start"]
    if shipped and spec["screen"] is not None:
        extra["screen"] = list(spec["screen"])
    elif not shipped:  # the whole test set whenever a subset of 1,000 names is within 1.5 points of 85%
        extra["screen"] = [1000, 0.015]
    rec = Recipe(
        model=names_model_config(
            cell="gru", embed=spec["embed"], hidden=spec["hidden"], layers=1, bidirectional=True
        ),
        lr=spec["lr"],
        batch_size=spec["batch"],
        schedule="onecycle",
        extra=extra,
    )
    if shipped:
        budget = Budget(spec["steps"], 600, spec["eval_every"], spec["eval_from"])
    else:
        every = max(1, round(9 * 128 / spec["batch"]))
        budget = Budget(spec["steps"], 600, every, int(0.4 * spec["steps"]))
    return dataclasses.replace(base, name=f"names[{name}]", recipe=rec, budget=budget)


def timed_task(spent: list[float]) -> Any:
    """names_task with its training evaluation timed into ``spent`` (one entry per evaluation)."""

    def build_task(lesson: Lesson, device: torch.device, generator: torch.Generator) -> Task:
        task = names_task(lesson, device, generator)
        inner = task.train_evaluate or task.evaluate

        def evaluate(m: torch.nn.Module) -> dict[str, Any]:
            start = time.perf_counter()
            out = inner(m)
            spent.append(time.perf_counter() - start)
            return out

        return dataclasses.replace(task, train_evaluate=evaluate)

    return build_task


def run_one(name: str, seed: int, *, shipped: bool) -> dict[str, Any]:
    spec = RECIPES[name]
    spent: list[float] = []
    lesson = dataclasses.replace(build(name, spec, shipped=shipped), build_task=timed_task(spent))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = lesson.run(device="cpu", seed=seed, threads=1, progress=False)
    wall = time.perf_counter() - start
    points, evals = [], iter(spent)
    eval_total = 0.0
    for p in result.curve:
        if not p.metrics:
            continue
        eval_total += next(evals)
        points.append(
            {
                "step": p.step,
                "seconds": round(p.seconds, 3),
                "train_seconds": round(p.seconds - eval_total, 3),
                **p.metrics,
            }
        )
    hit = next((p for p in points if p.get("accuracy", 0) >= GOAL), None)
    accs = [p["accuracy"] for p in points if "accuracy" in p]
    return {
        "recipe": name,
        "stage": "shipped" if shipped else "curve",
        "seed": seed,
        "reached": hit is not None,
        "step": hit["step"] if hit else None,
        "seconds": round(result.seconds, 3),  # the run, evaluations included (to the target if reached)
        "train_seconds": hit["train_seconds"] if hit else points[-1]["train_seconds"] if points else None,
        "eval_seconds": round(sum(spent), 3),
        "evaluations": len(spent),
        "full_evaluations": len(accs),
        "wall_seconds": round(wall, 3),  # with the data loading and the model built
        "accuracy": hit["accuracy"] if hit else (accs[-1] if accs else None),
        "best_accuracy": max(accs) if accs else None,
        "best_subset_accuracy": max(
            (p["subset_accuracy"] for p in points if "subset_accuracy" in p), default=None
        ),
        "ms_per_step": round(1000 * (points[-1]["train_seconds"] if points else 0) / result.steps, 2),
        "load": round(load, 2),
        "spec": {k: v for k, v in spec.items() if k != "note"},
        "curve": points,
    }


def course_point(seed: int) -> dict[str, Any]:
    """The course's 13_2 recipe (bench_lessons' re-implementation): six epochs, test accuracy after each."""
    import _course

    load = os.getloadavg()[0]
    run = _course.names_course(6, seed=seed, device="cpu")
    points = []
    train = 0.0
    for e in run.epochs:
        train += e.train_seconds
        points.append(
            {
                "epoch": e.epoch,
                "seconds": round(e.seconds, 3),
                "train_seconds": round(train, 3),
                "accuracy": round(e.accuracy, 4),
            }
        )
    hit = next((p for p in points if p["accuracy"] >= GOAL), None)
    return {
        "recipe": "course",
        "stage": "curve",
        "seed": seed,
        "reached": hit is not None,
        "step": None,
        "seconds": points[-1]["seconds"],
        "train_seconds": points[-1]["train_seconds"],
        "accuracy": points[-1]["accuracy"],
        "best_accuracy": max(p["accuracy"] for p in points),
        "load": round(load, 2),
        "spec": {
            "note": "13_2: Embedding(128,100) -> GRU(100,100,2 layers,bidirectional), hidden[-1]; batch 256, "
            "Adam 1e-3, sorted and packed by hand; 6 epochs"
        },
        "curve": points,
    }


def speed(names: list[str], rounds: int, steps: int, unchecked: bool) -> list[dict[str, Any]]:
    """ms per training step of each recipe (its model, its batches, Adam), interleaved round by round."""
    from rnnshapes.models import NamesClassifier

    runs: dict[str, Any] = {}
    for name in names:
        for checked in (True, False) if unchecked else (True,):
            lesson = build(name, RECIPES[name], shipped=True)
            torch.manual_seed(0)
            task = names_task(lesson, torch.device("cpu"), torch.Generator().manual_seed(0))
            model = task.model
            assert isinstance(model, NamesClassifier)
            if not checked:  # the undecorated forward, on the same weights
                model.forward = type(model).forward.__wrapped__.__get__(model)  # type: ignore[attr-defined,method-assign]
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)
            runs[name if checked else f"{name} (unchecked)"] = (task, model, opt, [])
    for _ in range(rounds):
        for _key, (task, model, opt, times) in runs.items():
            total = 0.0
            for _ in range(steps):
                batch = next(task.batches)
                start = time.perf_counter()
                loss = task.loss_fn(model, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += time.perf_counter() - start
            times.append(total / steps)  # one round's mean: bucketed batches differ in length
    base = statistics.median(runs[names[0]][3]) if names else 1.0
    rows = []
    for key, (_t, _m, _o, times) in runs.items():
        per_batch = statistics.median(times)  # the median round
        name = key.split(" ")[0]
        rows.append(
            {
                "recipe": key,
                "batch": RECIPES[name]["batch"],
                "ms_per_step": round(1000 * per_batch, 2),
                "ms_per_128_names": round(1000 * per_batch * 128 / RECIPES[name]["batch"], 2),
                "ratio_to_first": round(
                    per_batch / base * 128 / RECIPES[name]["batch"] * RECIPES[names[0]]["batch"] / 128, 3
                ),
            }
        )
    return rows


def save(out: Path, rows: list[dict[str, Any]], key: str = "runs") -> None:
    data: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    data.setdefault("machine", {})
    data["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "torch_threads": 1,
        "python": platform.python_version(),
    }
    old = data.get(key, [])
    if key == "runs":
        fresh = {(r["recipe"], r["stage"], r["seed"]) for r in rows}
        old = [r for r in old if (r["recipe"], r["stage"], r["seed"]) not in fresh]
    data[key] = old + rows
    data["recipes"] = {k: v for k, v in RECIPES.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, out)


def summary_line(row: dict[str, Any], base: dict[str, Any] | None = None) -> str:
    acc = row["accuracy"]
    text = (
        f"{row['recipe']:22s} seed {row['seed']} {'hit ' if row['reached'] else 'MISS'} step={row['step']!s:5s} "
        f"acc={acc} best={row['best_accuracy']} seconds={row['seconds']:.2f} train={row['train_seconds']} "
        f"evals={row.get('evaluations')}/{row.get('full_evaluations')} load={row['load']}"
    )
    if base is not None and base.get("reached") and row["reached"]:
        text += f" ratio={row['seconds'] / base['seconds']:.3f}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stage", choices=("curve", "shipped", "speed"), default="curve")
    parser.add_argument("--recipes", default="lesson", help="comma-separated names (--list), or 'course'")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5, help="speed: rounds")
    parser.add_argument("--steps", type=int, default=8, help="speed: steps per recipe per round")
    parser.add_argument("--unchecked", action="store_true", help="speed: also the models without the check")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in RECIPES.items():
            print(name, spec)
        return 0
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES and n != "course"]
    if unknown:
        parser.error(f"unknown recipes {unknown}; --list shows them")
    torch.set_num_threads(1)
    if args.stage == "speed":
        rows = speed(names, args.rounds, args.steps, args.unchecked)
        for r in rows:
            print(r, flush=True)
        save(args.out, [{**r, "load": round(os.getloadavg()[0], 2)} for r in rows], key="speed")
        return 0
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        base = None
        for name in names:
            row = (
                course_point(seed)
                if name == "course"
                else run_one(name, seed, shipped=args.stage == "shipped")
            )
            if name == names[0]:
                base = row
            elif base is not None and base["reached"] and row["reached"]:
                row["paired_ratio"] = round(row["seconds"] / base["seconds"], 3)
                row["paired_with"] = base["recipe"]
            print(summary_line(row, None if name == names[0] else base), flush=True)
            rows.append(row)
            save(args.out, [row])
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
