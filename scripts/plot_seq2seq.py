"""Plot lesson 14's point from benchmarks/results/seq2seq/sweep.json into docs/runs/seq2seq-length.png.

The character error rate of greedy decoding on the held-out lines, by source-length bucket, for the model
without attention (14_1, ``seq2seq``) and with it (14_2, ``seq2seq-attention``): each seed of the sweep as a
thin line, their mean as a thick one; a longer-budget run (``long.json``), dashed. Both models are scored on
the same lines.

    python benchmarks/sweep_seq2seq.py && python scripts/plot_seq2seq.py
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "benchmarks" / "results" / "seq2seq" / "sweep.json"
LONG = ROOT / "benchmarks" / "results" / "seq2seq" / "long.json"
"""Runs with a longer budget than the lessons' (``sweep_seq2seq.py --steps``), drawn dashed when present."""
OUT = ROOT / "docs" / "runs" / "seq2seq-length.png"
STYLE = {
    "seq2seq": ("#1f77b4", "14_1 seq2seq (no attention)"),
    "seq2seq-attention": ("#d62728", "14_2 with attention"),
}


def plot(sweep: dict, out: Path, long: dict | None = None) -> None:
    fig, ax = plt.subplots(figsize=(6.0, 3.9), dpi=100, layout="constrained")
    for r in (long or {}).get("runs", []):
        color, label = STYLE[r["lesson"]]
        ax.plot(
            range(len(r["buckets"])),
            [b["cer"] for b in r["buckets"]],
            color=color,
            lw=1.5,
            ls="--",
            marker=".",
            label=f"{label}, {r['steps']} steps of {r.get('batch_size', '?')} (seed {r['seed']})",
        )
    for name, (color, label) in STYLE.items():
        runs = [r for r in sweep["runs"] if r["lesson"] == name]
        if not runs:
            continue
        buckets = [b["bucket"] for b in runs[0]["buckets"]]
        x = list(range(len(buckets)))
        for r in runs:
            ax.plot(x, [b["cer"] for b in r["buckets"]], color=color, lw=0.7, alpha=0.35)
        mean = [statistics.mean(r["buckets"][i]["cer"] for r in runs) for i in x]
        ax.plot(x, mean, color=color, lw=2.0, marker="o", label=f"{label}, mean of {len(runs)} seeds")
        ax.set_xticks(x, [f"{b}\n({runs[0]['buckets'][i]['lines']} lines)" for i, b in enumerate(buckets)])
    ax.set_xlabel("source length (characters, without spaces)")
    ax.set_ylabel("character error rate")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.legend(fontsize=7, loc="outside upper center", ncol=2)  # above the axes, clear of the lines
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", type=Path, default=SWEEP)
    parser.add_argument("--long", type=Path, default=LONG)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    long = json.loads(args.long.read_text(encoding="utf-8")) if args.long.is_file() else None
    plot(json.loads(args.sweep.read_text(encoding="utf-8")), args.out, long)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
