"""Cost of the shape checks, side by side in one run (issue: shape-checking core).

Four versions of the same model step, interleaved round by round so that load on the machine hits all
four alike:
  unchecked   plain forward
  shapecheck  rnnshapes.shapecheck (module-bound sizes, *seq; shapes only), as a loop calls it: each call
              signature (shapes, dtypes, devices) is checked in full once, then remembered
  shapecheck_full  the same with that memory off: what every call with a new signature pays
  (and unchecked_control, a second unchecked instance: the noise floor of the ratios)
  jaxtyping   jaxtyped(typechecker=beartype) with the closest plain annotations
on (a) the tiny RNN step (RNN 5->5, length 6, batch 1; forward + backward + optimizer step) and (b) the
names-classifier step (embedding 128->100, bi-GRU 2x100, batch 256, length 12).

Also the check alone: a forward that returns precomputed tensors, so the difference is the checker's: for the
tiny signature without and with a hidden state, and for the pack/pad encoder's (x, lengths) -> (output, (h, c)).

    python benchmarks/bench_checks.py [--rounds 7] [--json out.json]
"""

import argparse
import json
import platform
import statistics
import sys
import time

import torch
from beartype import beartype
from jaxtyping import Float, Int, jaxtyped
from torch import Tensor, nn

from rnnshapes import Hidden, LSTMState, shapecheck
from rnnshapes.core._checks import _State


def tiny_models():
    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.batch_first = True
            self.rnn = nn.RNN(5, 5, batch_first=True)

    class Unchecked(Base):
        def forward(self, x, hidden=None):
            return self.rnn(x, hidden)

    class Checked(Base):
        @shapecheck
        def forward(
            self, x: Float[Tensor, "*seq input"], hidden: Hidden | None = None
        ) -> tuple[Float[Tensor, "*seq hidden"], Hidden]:
            return self.rnn(x, hidden)

    class Jax(Base):
        @jaxtyped(typechecker=beartype)
        def forward(
            self, x: Float[Tensor, "batch time input"], hidden: Float[Tensor, "ld batch hidden"] | None = None
        ) -> tuple[Float[Tensor, "batch time hidden"], Float[Tensor, "ld batch hidden"]]:
            return self.rnn(x, hidden)

    return {"unchecked": Unchecked, "shapecheck": Checked, "jaxtyping": Jax}


def names_models():
    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.batch_first = True
            self.embedding = nn.Embedding(128, 100)
            self.rnn = nn.GRU(100, 100, num_layers=2, bidirectional=True, batch_first=True)
            self.head = nn.Linear(200, 18)

        def run(self, x):
            _, h = self.rnn(self.embedding(x))
            return self.head(torch.cat([h[-2], h[-1]], dim=1))

        def shape_dims(self):
            return {"classes": 18}

    class Unchecked(Base):
        def forward(self, x, lengths):
            return self.run(x)

    class Checked(Base):
        @shapecheck
        def forward(
            self, x: Int[Tensor, "*seq"], lengths: Int[Tensor, " batch"]
        ) -> Float[Tensor, "batch classes"]:
            return self.run(x)

    class Jax(Base):
        @jaxtyped(typechecker=beartype)
        def forward(
            self, x: Int[Tensor, "batch time"], lengths: Int[Tensor, " batch"]
        ) -> Float[Tensor, "batch 18"]:
            return self.run(x)

    return {"unchecked": Unchecked, "shapecheck": Checked, "jaxtyping": Jax}


def check_only_models():
    out = (torch.randn(1, 6, 5), torch.randn(1, 1, 5))
    variants = tiny_models()
    result = {}
    for name, cls in variants.items():
        fwd = cls.forward

        def forward(self, x, hidden=None, _out=out):
            return _out

        # the same decorated signature, with a body that costs nothing
        forward.__annotations__ = getattr(fwd, "__wrapped__", fwd).__annotations__
        if name == "shapecheck":
            forward = shapecheck(forward)
        elif name == "jaxtyping":
            forward = jaxtyped(typechecker=beartype)(forward)
        result[name] = type(f"{name}Only", (cls,), {"forward": forward})
    return result


def lstm_models():
    """The pack/pad encoder's signature: (x, lengths) in, (output, (h, c)) out: the most a call checks."""

    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.batch_first = True
            self.lstm = nn.LSTM(3, 4, batch_first=True)

    out = (torch.randn(2, 7, 4), (torch.randn(1, 2, 4), torch.randn(1, 2, 4)))

    class Unchecked(Base):
        def forward(self, x, lengths, _out=out):
            return _out

    class Checked(Base):
        @shapecheck
        def forward(
            self, x: Float[Tensor, "*seq input"], lengths: Int[Tensor, " batch"], _out=out
        ) -> tuple[Float[Tensor, "*seq hidden"], LSTMState]:
            return _out

    class Jax(Base):
        @jaxtyped(typechecker=beartype)
        def forward(
            self, x: Float[Tensor, "batch time input"], lengths: Int[Tensor, " batch"], _out=out
        ) -> tuple[
            Float[Tensor, "batch time hidden"],
            tuple[Float[Tensor, "ld batch hidden"], Float[Tensor, "ld batch hidden"]],
        ]:
            return _out

    return {"unchecked": Unchecked, "shapecheck": Checked, "jaxtyping": Jax}


def guard_layers():
    """One layer of each kind guard checks, with its call: (make layer, inputs)."""
    return {
        "RNN 5->5, (1, 6, 5)": (lambda: nn.RNN(5, 5, batch_first=True), lambda: (torch.randn(1, 6, 5),)),
        "LSTM 3->4, (2, 7, 3) with (h, c)": (
            lambda: nn.LSTM(3, 4, batch_first=True),
            lambda: (torch.randn(2, 7, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))),
        ),
        "GRUCell 5->5, (4, 5) with hx": (
            lambda: nn.GRUCell(5, 5),
            lambda: (torch.randn(4, 5), torch.zeros(4, 5)),
        ),
        "Linear 5->3, (4, 6, 5)": (lambda: nn.Linear(5, 3), lambda: (torch.randn(4, 6, 5),)),
        "Embedding 11x4, (4, 6) indices": (
            lambda: nn.Embedding(11, 4),
            lambda: (torch.randint(0, 11, (4, 6)),),
        ),
    }


def bench_guard(n: int, rounds: int) -> dict:
    """Plain layer vs the same layer guarded (a repeated signature, and with the memory off: a new one),
    interleaved round by round; the cost is the difference of the best times, ratios paired per round."""
    from rnnshapes import guard

    rows = {}
    for label, (make, inputs) in guard_layers().items():
        torch.manual_seed(0)
        plain, guarded, full, control = make(), make(), make(), make()
        guard(guarded)
        guard(full)
        args = inputs()
        calls = {
            "plain": lambda m=plain, a=args: m(*a),
            "guard": lambda m=guarded, a=args: m(*a),
            "guard_full": lambda m=full, a=args: _memo_off(m, a),
            "plain_control": lambda m=control, a=args: m(*a),
        }
        with torch.no_grad():
            for call in calls.values():
                for _ in range(50):
                    call()
            samples: dict[str, list[float]] = {k: [] for k in calls}
            for _ in range(rounds):
                for k, call in calls.items():
                    samples[k].append(time_steps(call, n))
        best = {k: min(v) for k, v in samples.items()}
        rows[label] = {
            "plain_us": round(best["plain"], 2),
            "guard_overhead_us": round(best["guard"] - best["plain"], 2),
            "guard_full_overhead_us": round(best["guard_full"] - best["plain"], 2),
            "control_overhead_us": round(best["plain_control"] - best["plain"], 2),
            "guard_ratio_paired": round(
                statistics.median(a / b for a, b in zip(samples["guard"], samples["plain"], strict=True)), 3
            ),
        }
    return rows


def _memo_off(model, args):
    _State.memo = False
    try:
        return model(*args)
    finally:
        _State.memo = True


def time_steps(step, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n * 1e6


def bench(variants, make_inputs, n: int, rounds: int, train: bool):
    # shapecheck remembers the call signatures that passed; "shapecheck_full" is the same model with that
    # memory off, i.e. what a call with a signature not seen before pays
    variants = {**variants, "shapecheck_full": variants["shapecheck"]}
    # a second, identical unchecked model: its ratio to the first is the noise floor of this machine (where
    # each instance's memory lands moves a small step by several per cent, whatever the checks do)
    variants["unchecked_control"] = variants["unchecked"]
    steps = {}
    for name, cls in variants.items():
        torch.manual_seed(0)
        model = cls()
        opt = torch.optim.SGD(model.parameters(), lr=0.01) if train else None
        args = make_inputs()

        def step(model=model, opt=opt, args=args, full=name == "shapecheck_full"):
            if full:
                _State.memo = False
            try:
                out = model(*args)
            finally:
                _State.memo = True
            if opt is not None:
                out = out[0] if isinstance(out, tuple) else out
                loss = out.float().pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()

        for _ in range(max(3, n // 10)):
            step()
        steps[name] = step
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in steps.items():
            samples[name].append(time_steps(step, n))
    # times: best of rounds (as timeit advises), the round least disturbed by other load on the machine;
    # ratios: the median over rounds of checked / unchecked measured in the same round (paired, so a drift
    # of the machine between rounds cancels out instead of landing on one variant's best)
    best = {name: min(v) for name, v in samples.items()}
    paired = {
        name: statistics.median(a / b for a, b in zip(v, samples["unchecked"], strict=True))
        for name, v in samples.items()
    }
    return best, paired


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=9, help="interleaved rounds; the best round counts (default 9)"
    )
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="fewer steps, no names step (smoke test)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scale = 0.1 if args.quick else 1.0
    cases = {
        "check alone (tiny signature)": (
            check_only_models(),
            lambda: (torch.randn(1, 6, 5), None),
            int(20000 * scale),
            False,
        ),
        "check alone (tiny signature, hidden given)": (
            check_only_models(),
            lambda: (torch.randn(1, 6, 5), torch.randn(1, 1, 5)),
            int(20000 * scale),
            False,
        ),
        "check alone (x, lengths -> output, (h, c))": (
            lstm_models(),
            lambda: (torch.randn(2, 7, 3), torch.tensor([7, 4])),
            int(20000 * scale),
            False,
        ),
        "tiny RNN step (5->5, L=6, N=1)": (
            tiny_models(),
            lambda: (torch.randn(1, 6, 5), None),
            int(2000 * scale),
            True,
        ),
        "names step (emb 128->100, bi-GRU 2x100, N=256, L=12)": (
            names_models(),
            lambda: (torch.randint(1, 128, (256, 12)), torch.full((256,), 12)),
            max(3, int(10 * scale)),
            True,
        ),
    }
    if args.quick:  # a smoke test of the script: the names step (seconds per round) adds nothing to it
        del cases["names step (emb 128->100, bi-GRU 2x100, N=256, L=12)"]
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread, "
        f"torch {torch.__version__}, python {platform.python_version()}",
        "cases": {},
    }
    print(report["machine"])
    print(
        f"{'case':55s} {'unchecked':>11s} {'shapecheck':>11s} {'jaxtyping':>11s}  {'shapecheck +us (x)':>20s} {'jaxtyping +us (x)':>20s}"
    )
    for label, (variants, make, n, train) in cases.items():
        r, paired = bench(variants, make, n, args.rounds, train)
        base = r["unchecked"]
        row = {k: round(v, 2) for k, v in r.items()}
        row["shapecheck_overhead_us"] = round(r["shapecheck"] - base, 2)
        row["jaxtyping_overhead_us"] = round(r["jaxtyping"] - base, 2)
        row["shapecheck_ratio"] = round(r["shapecheck"] / base, 3)  # of the best times
        row["jaxtyping_ratio"] = round(r["jaxtyping"] / base, 3)
        row["shapecheck_ratio_paired"] = round(paired["shapecheck"], 3)  # median of same-round ratios
        row["shapecheck_full_overhead_us"] = round(r["shapecheck_full"] - base, 2)
        row["shapecheck_full_ratio_paired"] = round(paired["shapecheck_full"], 3)
        row["control_ratio_paired"] = round(paired["unchecked_control"], 3)
        row["jaxtyping_ratio_paired"] = round(paired["jaxtyping"], 3)
        report["cases"][label] = row
        print(
            f"{label:55s} {base:9.1f}us {r['shapecheck']:9.1f}us {r['jaxtyping']:9.1f}us  "
            f"{row['shapecheck_overhead_us']:+9.1f} ({row['shapecheck_ratio']:.3f}x) "
            f"{row['jaxtyping_overhead_us']:+9.1f} ({row['jaxtyping_ratio']:.3f}x)  "
            f"new signature: {row['shapecheck_full_overhead_us']:+.1f}us ({row['shapecheck_full_ratio_paired']:.3f}x)  "
            f"control: {row['control_ratio_paired']:.3f}x"
        )
    report["guard"] = bench_guard(int(5000 * scale), args.rounds)
    print(f"{'guard(layer): one call':40s} {'plain':>9s} {'+repeated':>10s} {'+new':>9s} {'control':>8s}")
    for label, row in report["guard"].items():
        print(
            f"{label:40s} {row['plain_us']:7.1f}us {row['guard_overhead_us']:+8.1f}us "
            f"{row['guard_full_overhead_us']:+7.1f}us {row['control_overhead_us']:+6.1f}us"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
