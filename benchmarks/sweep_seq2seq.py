"""The sweep behind lessons 14_1 and 14_2's targets, and the lesson's point: error rate by source length.

Each lesson (``seq2seq``, ``seq2seq-attention``) is trained over its whole step budget for seeds 0..N-1, one
process, one torch thread, evaluated at the lesson's cadence. For every run it records the curve (character
error rate and exact-line share of greedy decoding on the lesson's held-out lines), where the curve first
meets the lesson's target, and, with the final model, the error rate on *all* held-out lines by source-length
bucket. Both models are scored on the same lines.

Times are CPU seconds of this process (``time.process_time``), because the project's machine is shared: with
one torch thread they stand for the wall clock of an idle machine, which a loaded one cannot show. Wall
seconds are recorded beside them, with the load average.

    python benchmarks/sweep_seq2seq.py [--seeds 4] [--lesson seq2seq-attention] [--json out.json]
    python benchmarks/sweep_seq2seq.py --seeds 1 --steps 3000 --batch-size 64 --json benchmarks/results/seq2seq/long.json

The lesson data must be findable (``RNNSHAPES_DATA``). Writes benchmarks/results/seq2seq/sweep.json by
default; ``scripts/plot_seq2seq.py`` draws the length plot of the 14_2 docs page from it.
"""

import argparse
import json
import os
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch

from rnnshapes import lessons
from rnnshapes.lessons._seq2seq_task import LENGTH_BUCKETS, cer_by_source_length, decode, lesson_pairs
from rnnshapes.train import _fit

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "seq2seq" / "sweep.json"
LESSONS = ("seq2seq", "seq2seq-attention")
EXAMPLES = ("thisissungkim.iloveyou.", "romeo:", "whatisinaname?thatwhichwecallarose")


def cpu_clock() -> types.SimpleNamespace:
    """A stand-in for ``fit``'s ``time`` module whose ``perf_counter`` is this process's CPU time."""
    return types.SimpleNamespace(perf_counter=time.process_time)


def run_one(name: str, seed: int, steps: int | None = None, batch_size: int | None = None) -> dict[str, Any]:
    lesson = lessons.get(name)
    if batch_size is not None:  # another batch than the lesson's recipe (not the docs' run)
        import dataclasses

        assert lesson.recipe is not None
        lesson = dataclasses.replace(lesson, recipe=dataclasses.replace(lesson.recipe, batch_size=batch_size))
    if steps is not None:  # a longer budget, the lesson's schedule stretched to it (not the docs' run)
        import dataclasses

        budget = dataclasses.replace(
            lesson.budget,
            max_steps=steps,
            max_seconds=20 * steps,
            eval_every=steps // 6,
            eval_from=steps // 2,
        )
        lesson = dataclasses.replace(lesson, budget=budget)
    load_before = [round(x, 2) for x in os.getloadavg()]
    wall = time.perf_counter()
    real_time = _fit.time
    _fit.time = cpu_clock()  # type: ignore[assignment]
    try:
        result = lesson.run(device="cpu", seed=seed, threads=1, progress=False, stop_at_target=False)
    finally:
        _fit.time = real_time
    wall = time.perf_counter() - wall
    curve = [
        {
            "step": p.step,
            "cpu_seconds": round(p.seconds, 2),
            "train_loss": round(p.train_loss, 4),
            **p.metrics,
        }
        for p in result.curve
    ]
    hit = next((p for p in result.curve if lesson.target.met(p.metrics)), None)
    if seed == 0 and steps is None and batch_size is None:
        record_docs_run(lesson, result)
    assert result.model is not None
    _, held_out = lesson_pairs()
    with torch_threads_one():
        everything = decode(result.model, held_out, torch.device("cpu"))
        buckets = cer_by_source_length(result.model, held_out, predicted=everything)
        examples = result.model.restore(list(EXAMPLES))  # type: ignore[operator]
    from rnnshapes.data._pairs import character_error_rate

    cer_all, exact_all = character_error_rate(everything, [p.target for p in held_out])
    return {
        "lesson": name,
        "seed": seed,
        "steps": result.steps,
        "batch_size": lesson.recipe.batch_size if lesson.recipe is not None else None,
        "cpu_seconds": round(result.seconds, 2),
        "wall_seconds": round(wall, 2),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "final": result.final,
        "target": lesson.target.describe(),
        "reached_at": None if hit is None else {"step": hit.step, "cpu_seconds": round(hit.seconds, 2)},
        "held_out_all": {"lines": len(held_out), "cer": round(cer_all, 4), "exact": round(exact_all, 4)},
        "buckets": buckets,
        "examples": dict(zip(EXAMPLES, examples, strict=True)),
        "curve": curve,
    }


def record_docs_run(lesson: Any, result: Any) -> None:
    """Seed 0 is the docs' recorded run (scripts/record_runs.py's format, the whole budget, CPU seconds)."""
    import dataclasses

    sys.path.insert(0, str(ROOT / "scripts"))
    import record_runs

    curve = [
        {
            "step": p.step,
            "seconds": round(p.seconds, 3),
            "train_loss": round(p.train_loss, 5),
            "metrics": p.metrics,
        }
        for p in result.curve
    ]
    hit = record_runs.first_reached(curve, lesson.target)
    data = {
        "format": record_runs.FORMAT,
        "lesson": lesson.name,
        "course": lesson.course,
        "title": lesson.title,
        "model": lesson.model_class.__name__,
        "recipe": dataclasses.asdict(lesson.recipe),
        "target": {
            "metric": lesson.target.metric,
            "goal": lesson.target.goal,
            "mode": lesson.target.mode,
            "text": lesson.target.describe(),
        },
        "budget": dataclasses.asdict(lesson.budget),
        "stop_at_target": False,
        "seed": 0,
        "device": result.device,
        "reached": result.reached,
        "reached_at": None if hit is None else {"step": hit["step"], "seconds": hit["seconds"]},
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "clock": "CPU seconds of the one-thread process (the machine was shared)",
        "final": result.final,
        "curve": curve,
        "machine": record_runs.machine(),
    }
    record_runs.write_json(record_runs.RUNS / f"{lesson.name}.json", data)


class torch_threads_one:
    def __enter__(self) -> None:
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in LESSONS:
        mine = [r for r in runs if r["lesson"] == name]
        if not mine:
            continue
        finals = [r["final"]["cer"] for r in mine]
        hits = [r["reached_at"] for r in mine if r["reached_at"] is not None]
        out[name] = {
            "seeds": [r["seed"] for r in mine],
            "final_cer": finals,
            "worst_final_cer": max(finals),
            "median_final_cer": statistics.median(finals),
            "final_exact": [r["final"]["exact"] for r in mine],
            "reached": len(hits),
            "cpu_seconds": [r["cpu_seconds"] for r in mine],
            "buckets_mean_cer": {
                f"{low}-{high}": round(statistics.mean(r["buckets"][i]["cer"] for r in mine), 4)
                for i, (low, high) in enumerate(LENGTH_BUCKETS)
            },
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--lesson", action="append", choices=LESSONS)
    parser.add_argument("--json", type=Path, default=OUT)
    parser.add_argument("--batch-size", type=int, help="lines per step instead of the lesson's recipe")
    parser.add_argument(
        "--steps",
        type=int,
        help="train this many steps instead of the lesson's budget (write to another --json)",
    )
    args = parser.parse_args(argv)
    previous = json.loads(args.json.read_text()) if args.json.is_file() else {"runs": []}
    runs = [r for r in previous["runs"]]
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in args.lesson or LESSONS:
            row = run_one(name, seed, args.steps, args.batch_size)
            runs = [r for r in runs if (r["lesson"], r["seed"]) != (name, seed)] + [row]
            print(
                f"{name:18s} seed {seed}: {row['steps']} steps, {row['cpu_seconds']:.1f} CPU s "
                f"({row['wall_seconds']:.1f} wall s, load {row['load_before'][0]}), cer {row['final']['cer']}, "
                f"exact {row['final']['exact']}, reached at {row['reached_at']}, all held-out "
                f"{row['held_out_all']}, buckets {[b['cer'] for b in row['buckets']]}",
                flush=True,
            )
            print("   ", row["examples"], flush=True)
            runs.sort(key=lambda r: (LESSONS.index(r["lesson"]), r["seed"]))
            data = {
                "about": "benchmarks/sweep_seq2seq.py: CPU seconds of one process, one torch thread",
                "machine": {"cpu": _cpu(), "torch": torch.__version__},
                "runs": runs,
                "summary": summarise(runs),
            }
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
