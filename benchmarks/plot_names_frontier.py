"""Draw the names lesson's accuracy-vs-seconds frontier from ``bench_names_frontier.py``'s saved points.

Each recipe of the curve stage (seed 0) is one point: the test accuracy it first met 85% with, or its best
whole-test accuracy when it never did, against its seconds. The seconds are put on one scale, because
the sweep's machine was shared and its speed moved by a factor of 3 during the sweep: a recipe's training
steps times its milliseconds per step *relative to the lesson recipe's* (the speed stage: interleaved,
the median of rounds; the median over speed runs) times the lesson recipe's milliseconds per step on the quiet machine of the
benchmark run (``benchmarks/results/cpu-epyc-2core.json``); evaluations are left out. The course's own
recipe (13_2, six epochs) is that benchmark run's own measurement, its evaluations included.

    python benchmarks/plot_names_frontier.py   # -> docs/figures/names-frontier.png
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FRONTIER = HERE / "results" / "names-frontier" / "cpu-epyc-2core.json"
BENCH = HERE / "results" / "cpu-epyc-2core.json"
OUT = ROOT / "docs" / "figures" / "names-frontier.png"
SIZE, DPI = (6.0, 3.5), 100
GOAL = 0.85


def quiet_ms_per_step(bench: dict[str, Any]) -> float:
    """The lesson recipe's ms per training step in the benchmark run: its last loss-only curve point."""
    curve = bench["sections"]["names"]["ours"]["names"]["curve"]
    last = [p for p in curve if "accuracy" not in p][-1]
    return 1000 * last["seconds"] / last["step"]


def points(frontier: dict[str, Any], bench: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per recipe of the curve stage with a speed measurement (seed 0), plus the course's."""

    def cost_key(spec: dict[str, Any]) -> tuple[Any, ...]:  # what a step costs depends on (not lr, steps)
        return (spec["embed"], spec["hidden"], spec["batch"], spec["bucket"])

    relatives: dict[tuple[Any, ...], list[float]] = {}
    for r in frontier.get("speed", []):  # each speed run's ratio to the lesson recipe in the same run
        if r["recipe"] in frontier["recipes"]:  # not the "(unchecked)" rows
            key = cost_key(frontier["recipes"][r["recipe"]])
            relatives.setdefault(key, []).append(r["ratio_to_first"])  # per 128 names
    speed = {key: statistics.median(values) for key, values in relatives.items()}
    spread = {key: (min(values), max(values)) for key, values in relatives.items()}
    ms = quiet_ms_per_step(bench)
    out = []
    for run in frontier["runs"]:
        if run["stage"] != "curve" or run["seed"] != 0 or cost_key(run["spec"]) not in speed:
            continue
        steps = run["step"] if run["reached"] else run["spec"]["steps"]
        relative = speed[cost_key(run["spec"])] * run["spec"]["batch"] / 128  # per step of its own batch
        out.append(
            {
                "recipe": run["recipe"],
                "seconds": steps * relative * ms / 1000,
                "range": [
                    steps * r * run["spec"]["batch"] / 128 * ms / 1000 for r in spread[cost_key(run["spec"])]
                ],
                "accuracy": run["accuracy"] if run["reached"] else run["best_accuracy"],
                "reached": run["reached"],
            }
        )
    course = bench["sections"]["names"]["course"]
    out.append(
        {
            "recipe": "course 13_2",
            "seconds": course["seconds_to_best"],
            "accuracy": course["best_accuracy"],
            "reached": False,
        }
    )
    return out


def plot(pts: list[dict[str, Any]], out: Path) -> None:
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI, layout="constrained")
    for p in pts:
        color = "#d62728" if p["recipe"] == "lesson" else "#2ca02c" if p.get("chosen") else "#1f77b4"
        if "range" in p:  # the speed runs' lowest and highest ratio to the lesson recipe
            lo, hi = p["range"]
            ax.plot([lo, hi], [100 * p["accuracy"]] * 2, color=color, lw=0.8, alpha=0.5)
        ax.scatter(p["seconds"], 100 * p["accuracy"], color=color, marker="o" if p["reached"] else "x", s=22)
        ax.annotate(
            p["recipe"],
            (p["seconds"], 100 * p["accuracy"]),
            fontsize=6,
            xytext=(3, 2),
            textcoords="offset points",
        )
    ax.axhline(100 * GOAL, color="#555555", ls="--", lw=1, label="target: 85%")
    ax.axvline(15, color="#555555", ls=":", lw=1, label="goal: 15 s")
    ax.set_xlabel("seconds of training (quiet machine, one thread; evaluations left out)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left")
    ax.set_xlim(0, 40)
    ax.set_title(
        "names, seed 0: accuracy at 85% (o) or best (x) against seconds (bars: the speed runs' range)",
        fontsize=8,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frontier", type=Path, default=FRONTIER)
    parser.add_argument("--bench", type=Path, default=BENCH)
    parser.add_argument("--chosen", default=None, help="the recipe the lesson ships (drawn green)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    pts = points(json.loads(args.frontier.read_text()), json.loads(args.bench.read_text()))
    for p in pts:
        p["chosen"] = p["recipe"] == args.chosen
        print(f"{p['recipe']:22s} {p['seconds']:6.1f} s  {100 * p['accuracy']:.2f}%  reached={p['reached']}")
    plot(pts, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
