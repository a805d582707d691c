"""Cost of the gradient probes of rnnshapes.testing against batch and length, before and after issue 17.

  before  one backward pass per output slice (per example, per step), each over the whole batch: the loop the
          checks ran before issue 17, with its verdict read pair by pair
  whole   causality with every step's VJP on the whole sequence: one VJP per step, batched with
          torch.func.vmap in chunks (the checks' first batched version; ``_prefix.RERUN`` off)
  after   the checks as they are: batch independence proves the zero pairs with ~log2(batch)+2 group
          vector-Jacobian products (VJPs) and computes only leaking rows; causality computes each chunk of
          steps on the model rerun on the steps up to the chunk's last one (proved against the whole sequence)

on the issue's model, a GRU 32->128 tagger with a 10-class head (batch_first), on one torch thread:
check_batch_independence at time 20 against batch, check_causal at batch 4 against time. Variants are
interleaved size by size, so load on the machine hits both alike; each figure is the best of ``--rounds``
(``before`` runs once where it takes seconds, and
not at all beyond the issue's goal sizes, batch 128 and 200 steps).

    python benchmarks/bench_testing.py [--rounds 3] [--json out.json] [--quick]
"""

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from rnnshapes.testing import _prefix, check_batch_independence, check_causal
from rnnshapes.testing._gradients import _probe
from rnnshapes.testing._influence import every_row

BATCHES = (4, 16, 64, 128, 256)
LENGTHS = (20, 50, 100, 200, 400)
BEFORE_UP_TO = {"batch": 128, "causal": 200}
"""The largest batch / length ``before`` runs at (the issue's goal sizes); beyond, it would take minutes."""
BEFORE_LIMIT = 2.0
"""Seconds of one ``before`` run above which it is not repeated (its cost grows with the square)."""


class Tagger(nn.Module):
    """The issue's model: GRU 32 -> 128, batch first, a 10-class head on every step."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(32, 128, batch_first=True)
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def before(model: nn.Module, x: torch.Tensor, batch: bool) -> torch.Tensor:
    """The checks before issue 17: one backward pass per row, the verdict read pair by pair."""
    axis = 0 if batch else 1
    p = _probe(
        model,
        x,
        call=None,
        output=None,
        wrt=None,
        in_axis=axis,
        out_axis=axis,
        out_batch_first=True,
        in_batch_first=True,
        seed=0,
        what="before",
        column=0 if batch else 1,
        chunk_size=1,
    )
    influence = every_row(p.engine, p.n_out)
    n = p.n_out
    if batch:
        bad = [(i, j) for i in range(n) for j in range(n) if i != j and float(influence[i, j]) > 0]
    else:
        bad = [(t, s) for t in range(n) for s in range(t + 1, n) if float(influence[t, s]) > 0]
    assert not bad
    return influence


def _after(model: nn.Module, x: torch.Tensor, batch: bool) -> torch.Tensor:
    return check_batch_independence(model, x) if batch else check_causal(model, x)


def _whole(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """check_causal with every row on the whole sequence (no reruns)."""
    rerun, _prefix.RERUN = _prefix.RERUN, False
    try:
        return check_causal(model, x)
    finally:
        _prefix.RERUN = rerun


def _time(fn: Callable[..., Any], *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run(rounds: int = 3, quick: bool = False) -> dict[str, Any]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = Tagger()
    batches = BATCHES[:3] if quick else BATCHES
    lengths = LENGTHS[:3] if quick else LENGTHS
    rows: list[dict[str, Any]] = []
    warm = torch.randn(4, 5, 32)
    _after(model, warm, True), _after(model, warm, False)  # torch.func's first call loads its machinery
    plans = [("batch", b, 20) for b in batches] + [("causal", 4, t) for t in lengths]
    for check, b, t in plans:
        x = torch.randn(b, t, 32, generator=torch.Generator().manual_seed(b * 1000 + t))
        is_batch = check == "batch"
        after, whole, before_s = [], [], []
        for r in range(rounds):
            after.append(_time(_after, model, x, is_batch))
            if not is_batch:
                whole.append(_time(_whole, model, x))
            size = b if is_batch else t
            if size <= BEFORE_UP_TO[check] and (r == 0 or min(before_s) < BEFORE_LIMIT):
                before_s.append(_time(before, model, x, is_batch))
        row = {
            "check": "check_batch_independence" if is_batch else "check_causal",
            "batch": b,
            "time": t,
            "whole_s": round(min(whole), 4) if whole else None,
            "after_s": round(min(after), 4),
            "before_s": round(min(before_s), 4) if before_s else None,
        }
        row["speedup"] = round(row["before_s"] / row["after_s"], 1) if row["before_s"] else None
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return {
        "machine": platform.machine(),
        "torch": torch.__version__,
        "threads": 1,
        "rounds": rounds,
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| check | batch | time | before (s) | whole (s) | after (s) | speed-up | after/whole |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        before_s = f"{r['before_s']:.3f}" if r["before_s"] is not None else "(skipped)"
        speedup = f"{r['speedup']:.1f}x" if r["speedup"] is not None else ""
        whole = r.get("whole_s")
        whole_s, ratio = (f"{whole:.3f}", f"{r['after_s'] / whole:.2f}") if whole else ("", "")
        lines.append(
            f"| `{r['check']}` | {r['batch']} | {r['time']} | {before_s} | {whole_s} | {r['after_s']:.3f} | "
            f"{speedup} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="the three smallest sizes of each")
    args = parser.parse_args(argv)
    result = run(args.rounds, args.quick)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    print(markdown(result))


if __name__ == "__main__":
    main()
