"""Plot every docs/runs/<lesson>.json (written by scripts/record_runs.py) into docs/runs/<lesson>.png.

One small figure per lesson (600 x 350 pixels): the mean training loss between evaluations against the step
(flat over the steps each mean covers),
and the lesson's target metric with its goal drawn as a dashed line. A text target (the hello lessons'
"ihello") is plotted as the number of characters that already match it. Validation loss, the char-RNN's
metric, shares the loss axis; any other metric gets an axis of its own on the right.

    python scripts/plot_runs.py [--runs docs/runs]
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "runs"
SIZE = (6.0, 3.5)  # inches, at DPI: 600 x 350 pixels
DPI = 100
LOSS_COLOR, METRIC_COLOR, TARGET_COLOR = "#1f77b4", "#d62728", "#555555"


def matching(text: str, goal: str) -> int:
    """How many characters of ``text`` equal ``goal``'s at the same position."""
    return sum(a == b for a, b in zip(text, goal, strict=False))


def metric_series(run: dict[str, Any]) -> tuple[list[float], float, str]:
    """The values to plot for the target metric, the goal line, and the axis label."""
    target = run["target"]
    values = [p["metrics"][target["metric"]] for p in run["curve"] if target["metric"] in p["metrics"]]
    if isinstance(target["goal"], str):
        goal = target["goal"]
        return (
            [float(matching(str(v), goal)) for v in values],
            float(len(goal)),
            f"characters right of {goal!r}",
        )
    label = f"{'validation ' if target['metric'] == 'loss' else 'test '}{target['metric']}"
    return [float(v) for v in values], float(target["goal"]), label


def plot(run: dict[str, Any], out: Path) -> None:
    steps = [p["step"] for p in run["curve"]]
    losses = [p["train_loss"] for p in run["curve"]]
    values, goal, label = metric_series(run)
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI, layout="constrained")
    # each point is the mean loss since the previous point: drawn flat over the steps it averages
    ax.plot(
        [0, *steps],
        [losses[0], *losses],
        color=LOSS_COLOR,
        lw=1.4,
        drawstyle="steps-pre",
        label="training loss (mean over each stretch)",
    )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    shared = run["target"]["metric"] == "loss"
    mx = ax if shared else ax.twinx()
    metric_steps = [p["step"] for p in run["curve"] if run["target"]["metric"] in p["metrics"]]
    mx.plot(
        metric_steps,
        values,
        color=METRIC_COLOR,
        lw=1.4,
        marker="." if len(metric_steps) <= 40 else None,
        label=label,
    )
    mx.axhline(goal, color=TARGET_COLOR, ls="--", lw=1, label=f"target: {run['target']['text']}")
    if isinstance(run["target"]["goal"], str):
        mx.set_ylim(-0.2, goal + 0.4)
        mx.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not shared:
        mx.set_ylabel(label, color=METRIC_COLOR)
        mx.tick_params(axis="y", colors=METRIC_COLOR)
    if run.get("reached_at"):
        ax.axvline(run["reached_at"]["step"], color=TARGET_COLOR, lw=0.8, ls=":")
    handles = ax.get_legend_handles_labels()
    if not shared:
        more = mx.get_legend_handles_labels()
        handles = (handles[0] + more[0], handles[1] + more[1])
    mx.legend(*handles, loc="center right", fontsize=8, framealpha=0.85)
    machine = run["machine"]
    ax.set_title(
        f"{run['lesson']} ({run['course']}), seed {run['seed']}: {run['steps']} steps, {run['seconds']:.1f} s "
        f"on {machine['torch_threads']} thread of {machine['cpu']}",
        fontsize=8,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        # no timestamp in the metadata: the same JSON gives the same bytes
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
    parser.add_argument("--runs", type=Path, default=RUNS, help=f"folder of the JSON files (default: {RUNS})")
    args = parser.parse_args(argv)
    files = sorted(args.runs.glob("*.json"))
    if not files:
        print(f"no runs in {args.runs}: run scripts/record_runs.py first", file=sys.stderr)
        return 1
    for file in files:
        run = json.loads(file.read_text(encoding="utf-8"))
        out = file.with_suffix(".png")
        plot(run, out)
        print(
            f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: {out.stat().st_size // 1024} KB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
