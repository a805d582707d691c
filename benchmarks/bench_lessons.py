"""The lessons against the course's own recipes, side by side in one run, on one torch thread.

Sections (``--only``):
  hello  the three hihell lessons (12_2 step loop, 12_3 whole sequence, 12_4 embedding) over seeds 0..N-1:
         ours (``rnnshapes.lessons``, trained to "ihello") and the course's recipe (100 epochs), interleaved
         seed by seed so machine load hits both alike; how many reach "ihello", in how many steps, how fast.
  names  13_2: the course's bidirectional GRU for N epochs (test accuracy after each) against the lessons
         names-basic and names trained to their targets; time to the same accuracies.
  char   13_3: the course's one-character-per-call char-RNN for a fixed wall-clock budget (ms per character,
         teacher-forced loss on the lesson's held-out text) against the char-rnn lesson (time to its target,
         characters per second, time to the course's loss).

    python benchmarks/bench_lessons.py [--quick] [--device cpu|cuda] [--only hello,char] [--json out.json]

``benchmarks/run.py`` runs these and the shape-check benchmark and writes the results file.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import _course
import torch

from rnnshapes import lessons
from rnnshapes.train import TrainResult

SECTIONS = ("hello", "names", "char")
HELLO = {"hello-step": "12_2", "hello-sequence": "12_3", "hello-embedding": "12_4"}


@dataclass(frozen=True)
class Config:
    """What one benchmark run does. ``Config.full_run`` and ``Config.quick_run`` are the two presets."""

    device: str = "cpu"
    quick: bool = False  # tiny budgets: figures not for comparison
    seeds: int = 100  # hello sweep: seeds 0..seeds-1
    hello_epochs: int = 100  # the course's epochs
    names_epochs: int = 6  # the course's 13_2 epochs (70% after 2, 80% after 6 on this project's CPU)
    names_max_batches: int | None = None  # cut the course's epochs short (smoke runs)
    names_test_limit: int | None = None  # evaluate the course on the first names only (smoke runs)
    char_seconds: float = 10.0  # the course's 13_3 training budget (wall clock)
    budget_scale: float = 1.0  # multiplies the lessons' names and char budgets
    seed: int = 0  # names and char runs

    @classmethod
    def full_run(cls, device: str = "cpu") -> "Config":
        return cls(device=device)

    @classmethod
    def quick_run(cls, device: str = "cpu") -> "Config":
        """Tiny budgets: every code path once, in a few seconds (the smoke test)."""
        return cls(
            device=device,
            quick=True,
            seeds=2,
            names_epochs=1,
            names_max_batches=2,
            names_test_limit=512,
            char_seconds=0.2,
            budget_scale=0.005,
        )


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def seconds_to(
    result: TrainResult, goal: float, mode: str = "max", metric: str | None = None
) -> float | None:
    """Wall clock until the curve's metric first reached ``goal`` (``None``: never, within the run)."""
    key = metric or result.target.metric
    for point in result.curve:
        value = point.metrics.get(key)
        if isinstance(value, (int, float)) and (value >= goal if mode == "max" else value <= goal):
            return point.seconds
    return None


def lesson_row(result: TrainResult, *, curve: bool = True) -> dict[str, Any]:
    """A lesson run as a JSON-able row: the summary, the lesson's course file and (optionally) the curve."""
    row = result.summary()
    row["course"] = lessons.get(result.name).course
    row["threads"] = result.threads
    if curve:
        row["curve"] = [
            {
                "step": p.step,
                "seconds": round(p.seconds, 3),
                "train_loss": round(p.train_loss, 4),
                **p.metrics,
            }
            for p in result.curve
        ]
    return row


def _run(name: str, cfg: Config, scale: float = 1.0) -> TrainResult:
    return lessons.get(name).run(
        device=cfg.device, seed=cfg.seed, threads=1, progress=False, budget_scale=scale
    )


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- hello --------------------------------------------------------------------------------------------------


def bench_hello(cfg: Config) -> dict[str, Any]:
    """Seeds 0..N-1 of the three hihell lessons, ours and the course's, interleaved seed by seed."""
    ours: dict[str, list[TrainResult]] = {name: [] for name in HELLO}
    course: dict[str, list[_course.HelloRun]] = {name: [] for name in HELLO}
    load_before = _load()
    start = time.perf_counter()
    for seed in range(cfg.seeds):
        for name, course_file in HELLO.items():
            ours[name].append(lessons.get(name).run(device=cfg.device, seed=seed, threads=1, progress=False))
            course[name].append(_course.hello_course(course_file, seed, cfg.device, cfg.hello_epochs))
    out: dict[str, Any] = {
        "seeds": cfg.seeds,
        "course_epochs": cfg.hello_epochs,
        "load_before": load_before,
        "load_after": _load(),
        "seconds": round(time.perf_counter() - start, 2),
        "lessons": {},
    }
    for name, course_file in HELLO.items():
        mine, theirs = ours[name], course[name]
        reached = [r for r in mine if r.reached]
        steps = [r.steps for r in reached]
        ms = [1000 * r.seconds for r in mine]
        hit = [r for r in theirs if r.first_step is not None]
        course_ms = [1000 * r.seconds for r in theirs]
        course_ms_first = [1000 * r.seconds_to_first for r in hit if r.seconds_to_first is not None]
        ours_row = {
            "runs": len(mine),
            "reached": len(reached),
            "median_steps": _median(steps),
            "max_steps": max(steps) if steps else None,
            "median_ms": _round(_median(ms)),
            "max_ms": _round(max(ms)),
            "budget_steps": lessons.get(name).budget.max_steps,  # type: ignore[union-attr]
            "missed_seeds": [r.seed for r in mine if not r.reached],
        }
        course_row = {
            "runs": len(theirs),
            "reached": sum(r.reached for r in theirs),  # "ihello" after the last epoch
            "ever": len(hit),  # printed "ihello" in some epoch
            "median_first_step": _median([float(r.first_step) for r in hit if r.first_step is not None]),
            "max_first_step": max((r.first_step for r in hit if r.first_step is not None), default=None),
            "median_ms": _round(_median(course_ms)),  # the recipe's 100 epochs
            "median_ms_to_first": _round(_median(course_ms_first)),
            "missed_seeds": [r.seed for r in theirs if not r.reached],
        }
        out["lessons"][name] = {
            "course_file": course_file,
            "ours": ours_row,
            "course": course_row,
            "seed0": lesson_row(mine[0], curve=False),
            "ratios": {
                # course time per seed (its 100 epochs) / ours (to the target)
                "time_per_seed": _ratio(course_row["median_ms"], ours_row["median_ms"]),
                # course time until it first printed "ihello" / ours
                "time_to_ihello": _ratio(course_row["median_ms_to_first"], ours_row["median_ms"]),
                # the course's steps until it first printed "ihello" / ours' steps to the target
                "steps_to_ihello": _ratio(course_row["median_first_step"], ours_row["median_steps"]),
            },
        }
    return out


# --- names --------------------------------------------------------------------------------------------------


def bench_names(cfg: Config) -> dict[str, Any]:
    """The course's 13_2 for N epochs between the two names lessons (time to the same test accuracies)."""
    load_before = _load()
    basic = _run("names-basic", cfg, cfg.budget_scale)
    course = _course.names_course(
        cfg.names_epochs,
        seed=cfg.seed,
        device=cfg.device,
        max_batches=cfg.names_max_batches,
        test_limit=cfg.names_test_limit,
    )
    names = _run("names", cfg, cfg.budget_scale)
    ours = {"names-basic": basic, "names": names}
    best = course.best
    goals = sorted({0.70, 0.80, best})
    rows = []
    for goal in goals:  # exact goals for the look-ups, rounded ones for the table
        row: dict[str, Any] = {
            "accuracy": round(goal, 4),
            "course_seconds": _round(course.seconds_to(goal), 2),
        }
        for name, result in ours.items():
            row[f"{name}_seconds"] = _round(seconds_to(result, goal), 2)
            row[f"{name}_speedup"] = _ratio(course.seconds_to(goal), seconds_to(result, goal))
        rows.append(row)
    best_row = rows[goals.index(best)]
    train_seconds = [e.train_seconds for e in course.epochs]
    return {
        "load_before": load_before,
        "load_after": _load(),
        "course": {
            "recipe": "13_2: Embedding(128,100) -> GRU(100,100,2 layers,bidirectional) -> Linear(100,18) on "
            "hidden[-1]; batch 256, Adam 1e-3, packed after sorting by length",
            "epochs": [asdict(e) for e in course.epochs],
            "best_accuracy": round(best, 4),
            "seconds_to_best": _round(course.seconds_to(best), 2),
            "median_epoch_train_seconds": _round(_median(train_seconds), 2),
            "max_batches": cfg.names_max_batches,
            "test_limit": cfg.names_test_limit,
        },
        "ours": {name: lesson_row(result) for name, result in ours.items()},
        "thresholds": rows,
        "ratios": {f"{name}_time_to_course_best": best_row[f"{name}_speedup"] for name in ours},
    }


# --- char ---------------------------------------------------------------------------------------------------


def bench_char(cfg: Config) -> dict[str, Any]:
    """The course's 13_3 for a fixed wall clock against the char-rnn lesson, both scored by the lesson's own
    evaluation of its held-out text."""
    lesson = lessons.get("char-rnn")
    assert lesson.recipe is not None
    vocab, train_ids, val_ids = _course.held_out_split()
    evaluate = _course.lesson_evaluator(cfg.device)
    frequencies = _course.FrequencyModel(train_ids, len(vocab)).to(cfg.device)
    load_before = _load()
    course = _course.char_course(cfg.char_seconds, seed=cfg.seed, device=cfg.device)
    course_loss = evaluate(_course.CourseCharAsLesson(course.decoder, "".join(vocab.itos)).to(cfg.device))
    ours = _run("char-rnn", cfg, cfg.budget_scale)
    length = lesson.recipe.extra["length"]
    chars = lesson.recipe.batch_size * length * ours.steps
    ours_cps = chars / ours.seconds
    course_cps = course.characters / course.seconds if course.seconds else None
    to_course_loss = seconds_to(ours, course_loss, "min")
    final_loss = ours.final.get("loss")
    return {
        "load_before": load_before,
        "load_after": _load(),
        "held_out": {
            "characters": len(val_ids),
            "symbols": len(vocab),
            "unigram_loss": round(evaluate(frequencies), 4),
            "uniform_loss": round(math.log(len(vocab)), 4),
        },
        "course": {
            "recipe": "13_3: Embedding(128,100) -> GRU(100,100,3 layers) -> Linear(100,128), one character per "
            "call, fed its own argmax, one line per Adam(1e-3) step",
            "budget_seconds": cfg.char_seconds,
            "seconds": round(course.seconds, 4),
            "lines": course.lines,
            "characters": course.characters,
            "ms_per_char": round(course.ms_per_char, 4),
            "chars_per_second": _round(course_cps, 1),
            "train_loss_last_100_lines": _round(course.mean_train_loss, 4),
            "eval_loss": round(course_loss, 4),
        },
        "ours": {
            **lesson_row(ours),
            "batch": lesson.recipe.batch_size,
            "length": length,
            "characters": chars,
            "chars_per_second": round(ours_cps, 1),
            "ms_per_char": round(1000 / ours_cps, 5),
            "seconds_to_course_loss": _round(to_course_loss, 2),
        },
        "ratios": {
            "throughput": _ratio(ours_cps, course_cps),  # characters per second, ours / course
            # the course's budget / ours' time to the loss the course ended with
            "time_to_course_loss": _ratio(course.seconds, to_course_loss),
            "loss_gap": _round(course_loss - final_loss, 4) if isinstance(final_loss, float) else None,
        },
    }


BENCHES = {"hello": bench_hello, "names": bench_names, "char": bench_char}


def lesson_table(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per trained lesson (hello: seed 0 of the sweep), in course order."""
    rows = []
    if "hello" in sections:
        rows += [entry["seed0"] for entry in sections["hello"]["lessons"].values()]
    if "names" in sections:
        rows += [{k: v for k, v in r.items() if k != "curve"} for r in sections["names"]["ours"].values()]
    if "char" in sections:
        row = sections["char"]["ours"]
        rows.append({k: v for k, v in row.items() if k != "curve"})
    return sorted(rows, key=lambda r: r["course"])


def parse_only(text: str | None) -> list[str]:
    """``"hello,char"`` -> the named sections, in run order; a ValueError names the unknown ones."""
    if not text:
        return list(SECTIONS)
    asked = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in asked if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in asked]


def run_sections(cfg: Config, only: list[str] | None = None, log: Any = print) -> dict[str, Any]:
    """Run the asked sections (all by default) on one torch thread; returns ``{section: results}``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    try:
        for name in only or SECTIONS:
            start = time.perf_counter()
            out[name] = BENCHES[name](cfg)
            out[name]["wall_seconds"] = round(time.perf_counter() - start, 2)
            log(f"[bench_lessons] {name}: {out[name]['wall_seconds']:.1f} s")
    finally:
        torch.set_num_threads(before)
    return out


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (a temporary file in the same folder, then ``os.replace``)."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def config_from_args(args: argparse.Namespace) -> Config:
    cfg = Config.quick_run(args.device) if args.quick else Config.full_run(args.device)
    changes = {
        k: getattr(args, k)
        for k in ("seeds", "names_epochs", "char_seconds", "budget_scale")
        if getattr(args, k, None) is not None
    }
    return replace(cfg, **changes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    parser.add_argument("--only", help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    parser.add_argument("--seeds", type=int, help="hello sweep seeds (default 100; quick 2)")
    parser.add_argument("--names-epochs", type=int, help="the course's 13_2 epochs (default 6)")
    parser.add_argument("--char-seconds", type=float, help="the course's 13_3 budget in seconds (default 10)")
    parser.add_argument("--budget-scale", type=float, help="scale the lessons' names and char budgets")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    try:
        only = parse_only(args.only)
    except ValueError as err:
        parser.error(str(err))
    sections = run_sections(config_from_args(args), only)
    results = {"sections": sections, "lessons": lesson_table(sections)}
    if args.json:
        write_json(args.json, results)
    else:
        print(json.dumps(results, indent=2))
    return sections


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
