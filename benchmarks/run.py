"""Run every benchmark in one go and keep the figures: the shape-check cost (``bench_checks.py``) and the
lessons against the course's recipes (``bench_lessons.py``), on one torch thread.

The results go to ``benchmarks/results/<machine-tag>.json`` (a full run; ``--quick`` writes only with
``--out``) and the tables are printed as Markdown (``render_markdown`` is what the docs include).

    python benchmarks/run.py                      # full run on the CPU (minutes)
    python benchmarks/run.py --quick              # tiny budgets, seconds (the smoke test)
    python benchmarks/run.py --device cuda --tag h100
    python benchmarks/run.py --only hello,char    # sections: checks, hello, names, char
    python benchmarks/run.py --markdown benchmarks/results/cpu-dev.json   # tables from a saved run
"""

import argparse
import datetime
import json
import os
import platform
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import bench_checks
import bench_lessons
import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SECTIONS = ("checks", *bench_lessons.SECTIONS)
SCHEMA = 1


def cpu_model() -> str:
    """The CPU's ``model name`` from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, torch, python, the accelerator, the date and load."""
    dev = torch.device(device)
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": 1,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(dev),
        "device_name": None,
        "cuda": torch.version.cuda,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"--device {device} asked for, but torch.cuda.is_available() is False (torch "
                f"{torch.__version__}); run with --device cpu"
            )
        info["device_name"] = torch.cuda.get_device_name(dev)
    else:
        info["device_name"] = info["cpu"]
    return info


def machine_tag(info: dict[str, Any]) -> str:
    """``cpu-amd-epyc``, ``cuda-nvidia-h100-80gb-hbm3``: the device type and its name as a file name."""
    kind = str(info["device"]).split(":")[0]
    slug = re.sub(r"[^a-z0-9]+", "-", str(info["device_name"]).lower()).strip("-")
    return f"{kind}-{slug}" if slug else kind


def run_all(
    cfg: bench_lessons.Config,
    only: list[str] | None = None,
    *,
    checks_rounds: int | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Run the asked sections (all by default) and return the results document (JSON-able)."""
    only = list(only or SECTIONS)
    info = machine_info(cfg.device)
    start = time.perf_counter()
    sections: dict[str, Any] = {}
    if "checks" in only:
        rounds = checks_rounds if checks_rounds is not None else (1 if cfg.quick else 9)
        argv = ["--rounds", str(rounds)] + (["--quick"] if cfg.quick else [])
        t = time.perf_counter()
        sections["checks"] = {**bench_checks.main(argv), "rounds": rounds, "quick": cfg.quick}
        sections["checks"]["wall_seconds"] = round(time.perf_counter() - t, 2)
        log(f"[run] checks: {sections['checks']['wall_seconds']:.1f} s")
    lesson_sections = [s for s in bench_lessons.SECTIONS if s in only]
    if lesson_sections:
        sections.update(bench_lessons.run_sections(cfg, lesson_sections, log=log))
    ratios: dict[str, Any] = {}
    if "hello" in sections:
        for name, entry in sections["hello"]["lessons"].items():
            ratios[name] = entry["ratios"]
    for name in ("names", "char"):
        if name in sections:
            ratios[name] = sections[name]["ratios"]
    return {
        "schema": SCHEMA,
        "machine": info,
        "config": {**asdict(cfg), "sections": only},
        "wall_seconds": round(time.perf_counter() - start, 1),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "sections": sections,
        "lessons": bench_lessons.lesson_table(sections),
        "ratios": ratios,
    }


# --- Markdown ----------------------------------------------------------------------------------------------


def _f(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return f"{value}{suffix}"


def _x(value: Any) -> str:
    """A ratio: ``12.3x``."""
    return "—" if value is None else f"{value:,.1f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines + [""]


def _machine_md(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    where = m["device"] if m["device"] == "cpu" else f"{m['device']} ({m['device_name']})"
    return [
        f"Measured {m['date']} on {where}: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"{m['torch_threads']} torch thread, torch {m['torch']}, python {m['python']}. Load average at the "
        f"start {', '.join(map(str, m['load_average']))}; the whole run took {results['wall_seconds']:,.0f} s"
        + (" (quick mode: tiny budgets, not for comparison)." if results["config"].get("quick") else "."),
        "",
    ]


def _lessons_md(rows: list[dict[str, Any]]) -> list[str]:
    body = [
        [
            f"`{r['name']}`",
            r["course"],
            f"`{r['target']}`",
            _f(r["reached"]),
            _f(r["steps"]),
            _f(r["seconds"], 2, " s"),
            f"{r['metric']} = {_f(r['value'], 4) if isinstance(r['value'], float) else r['value']}",
        ]
        for r in rows
    ]
    return ["### The lessons (ours)", ""] + _table(
        ["lesson", "course", "target", "reached", "steps", "time", "final"], body
    )


def _hello_md(hello: dict[str, Any]) -> list[str]:
    n, epochs = hello["seeds"], hello["course_epochs"]
    body = []
    for name, e in hello["lessons"].items():
        o, c = e["ours"], e["course"]
        body.append(
            [
                f"`{name}` ({e['course_file']})",
                f"{o['reached']}/{o['runs']}",
                f"{_f(o['median_steps'], 1)} / {_f(o['max_steps'])}",
                _f(o["median_ms"], 1),
                f"{c['reached']}/{c['runs']}",
                f"{_f(c['median_first_step'], 1)} / {_f(c['max_first_step'])}",
                _f(c["median_ms"], 1),
                _x(e["ratios"]["time_per_seed"]),
            ]
        )
    header = [
        "lesson",
        "ours: reached",
        "ours: steps median / max",
        "ours: ms per seed",
        f"course: 'ihello' after {epochs} epochs",
        "course: first 'ihello' step median / max",
        f"course: ms per seed ({epochs} epochs)",
        "course ms / ours ms",
    ]
    return (
        [f'### "hihell" -> "ihello" over seeds 0-{n - 1}', ""]
        + _table(header, body)
        + [
            "Ours: optimizer steps until the prediction reads 'ihello' (training stops there). Course: its "
            f"recipe always runs {epochs} epochs and is judged on the final weights; its first 'ihello' step "
            "counts the steps before an epoch's printed prediction first read 'ihello'. Seeds interleaved, "
            "ours and the course's, so machine load hits both alike.",
            "",
        ]
    )


def _at_first_point(row: dict[str, Any], key: str, goal: float, mode: str = "max") -> bool:
    """Did a lesson run meet ``goal`` at its first evaluation? Then its time is only an upper bound."""
    evaluated = [p for p in row.get("curve") or [] if key in p]  # loss-only points carry no metric
    value = evaluated[0].get(key) if evaluated else None
    if not isinstance(value, (int, float)):
        return False
    return value >= goal - 1e-9 if mode == "max" else value <= goal + 1e-9


def _bound_x(value: Any, lower_bound: bool) -> str:
    return ("≥" if lower_bound and value is not None else "") + _x(value)


_BOUND_NOTE = (
    "≥: ours met it at its first evaluation, so its time is an upper bound and the ratio a lower bound."
)


def _names_md(names: dict[str, Any]) -> list[str]:
    c = names["course"]
    o = names["ours"]
    epochs = ", ".join(f"{100 * e['accuracy']:.1f}%" for e in c["epochs"])
    body = [
        [
            f"{100 * r['accuracy']:.2f}%",
            _f(r["course_seconds"], 1, " s"),
            _f(r["names-basic_seconds"], 1, " s"),
            _f(r["names_seconds"], 1, " s"),
            _bound_x(r["names-basic_speedup"], _at_first_point(o["names-basic"], "accuracy", r["accuracy"])),
            _bound_x(r["names_speedup"], _at_first_point(o["names"], "accuracy", r["accuracy"])),
        ]
        for r in names["thresholds"]
    ]
    return (
        ["### Names (13_2): time to a test accuracy", ""]
        + _table(
            [
                "test accuracy",
                "course 13_2",
                "`names-basic`",
                "`names`",
                "speed-up `names-basic`",
                "speed-up `names`",
            ],
            body,
        )
        + [
            f"The course's recipe, {len(c['epochs'])} epochs (test accuracy after each: {epochs}); "
            f"{_f(c['median_epoch_train_seconds'], 1)} s of training per epoch, best "
            f"{100 * c['best_accuracy']:.2f}%. Ours ended at "
            + "; ".join(
                f"`{k}` {100 * float(v['value']):.2f}% after {v['steps']} steps" for k, v in o.items()
            )
            + ". Times include the evaluations ("
            + ", ".join(f"`{k}` every {_eval_every(v)}" for k, v in o.items())
            + ", the course after every epoch); '—': not reached within the run (ours stop at their "
            "targets). " + _BOUND_NOTE,
            "",
        ]
    )


def _eval_every(row: dict[str, Any]) -> str:
    """``27 steps from step 324``: the evaluation cadence read off the curve's evaluated points."""
    metric = row.get("metric")
    steps = [p["step"] for p in row.get("curve") or [] if metric in p]
    if len(steps) >= 2:
        return f"{steps[1] - steps[0]} steps from step {steps[0]}"
    return f"{steps[0]} steps" if steps else "? steps"


def _char_md(char: dict[str, Any]) -> list[str]:
    c, o, h, r = char["course"], char["ours"], char["held_out"], char["ratios"]
    # ours' held-out loss at its last evaluation within the course's budget (equal wall clock)
    within = [p for p in o.get("curve") or [] if p["seconds"] <= c["seconds"] and "loss" in p]
    at_budget = within[-1] if within else None
    body = [
        ["ms per character", _f(c["ms_per_char"], 3), _f(o["ms_per_char"], 4), _x(r["throughput"])],
        ["characters per second", _f(c["chars_per_second"], 0), _f(o["chars_per_second"], 0), ""],
        ["training time", _f(c["seconds"], 1, " s"), _f(o["seconds"], 1, " s"), ""],
        ["characters trained on", _f(c["characters"]), _f(o["characters"]), ""],
        ["held-out loss at the end (nats/char)", _f(c["eval_loss"], 3), _f(o["value"], 3), ""],
        [
            f"held-out loss after at most {_f(c['seconds'], 1, ' s')}",
            _f(c["eval_loss"], 3),
            "—" if at_budget is None else f"{at_budget['loss']:.3f} (step {at_budget['step']})",
            "",
        ],
        [
            "time to the course's loss",
            _f(c["seconds"], 1, " s"),
            _f(o["seconds_to_course_loss"], 1, " s"),
            _bound_x(r["time_to_course_loss"], _at_first_point(o, "loss", c["eval_loss"], "min")),
        ],
    ]
    return (
        ["### Char-RNN (13_3)", ""]
        + _table(["", "course 13_3 (one character per call)", "`char-rnn` (ours)", "ratio"], body)
        + [
            (
                f"Both scored by the lesson's own evaluation of its held-out text ({h['characters']:,} "
                f"characters, the last 10% of the lower-cased, spaces-removed Shakespeare; {h['symbols']} "
                "symbols), the course's 128-way predictions unchanged."
                if "characters" in h  # results files before the lesson read the whole held-out text
                else f"Held-out text: {h['windows']} windows of {h['length']} characters from the last 10% "
                "of the lower-cased, spaces-removed Shakespeare."
            )
            + f" A model that knows only the characters' frequencies "
            f"scores {h['unigram_loss']:.3f} nats/char there, uniform guessing {h['uniform_loss']:.3f}. "
            f"Ours reached `{o['target']}`: {_f(o['reached'])} ({o['steps']} steps), evaluating every "
            f"{_eval_every(o)}. The course trains on its own argmax predictions, so it can learn little "
            "more than the characters' frequencies. " + _BOUND_NOTE,
            "",
        ]
    )


def _checks_md(checks: dict[str, Any]) -> list[str]:
    body = [
        [
            case,
            _f(row["unchecked"], 1),
            _f(row["shapecheck"], 1),
            _f(row["shapecheck_full"], 1) if "shapecheck_full" in row else "-",
            _f(row["jaxtyping"], 1),
            _ratio_cell(row, "shapecheck"),
            f"{row['shapecheck_full_ratio_paired']:.3f}x" if "shapecheck_full_ratio_paired" in row else "-",
            _ratio_cell(row, "jaxtyping"),
            f"{row['control_ratio_paired']:.3f}x" if "control_ratio_paired" in row else "-",
        ]
        for case, row in checks["cases"].items()
    ]
    columns = ["case", "unchecked", "shapecheck", "shapecheck, new signature", "jaxtyping"]
    columns += ["shapecheck / plain", "new signature / plain", "jaxtyping / plain", "control"]
    return (
        ["### Cost of the shape checks (µs per call, best of interleaved rounds)", ""]
        + _table(columns, body)
        + [
            f"{checks['machine']}; {checks['rounds']} rounds. `shapecheck` remembers the call signatures "
            "(shapes, dtypes, devices, the module's layout and weights) that passed, as a training loop "
            'meets them again; "new signature" is the full check a call pays the first time. Times are the '
            "best round of each variant; a ratio is the median over rounds of the two variants measured in "
            'the same round (best-of ratio in brackets). "control" is a second unchecked model timed the '
            "same way: how far two identical models differ on this machine, the noise floor of every ratio.",
            "",
        ]
    )


def _guard_md(checks: dict[str, Any]) -> list[str]:
    rows = checks.get("guard")
    if not rows:  # runs recorded before guard was measured
        return []
    body = [
        [
            layer,
            _f(row["plain_us"], 1),
            f"{row['guard_overhead_us']:+.1f}",
            f"{row['guard_full_overhead_us']:+.1f}",
            f"{row['control_overhead_us']:+.1f}",
            f"{row['guard_ratio_paired']:.3f}x",
        ]
        for layer, row in rows.items()
    ]
    columns = ["layer and call", "plain (µs)", "guard, repeated signature", "guard, new signature"]
    columns += ["control", "guard / plain"]
    return (
        ["### Cost of guard per layer call (µs, best of interleaved rounds)", ""]
        + _table(columns, body)
        + [
            "The same call on a plain layer and on a guarded one (`torch.no_grad()`); the goal is <= 5 µs for a "
            "repeated signature and <= 10 µs for a new one. An embedding's index range is read on every call "
            '(its values, not its signature, decide it). "control" is a second plain layer: the noise floor.',
            "",
        ]
    )


def _ratio_cell(row: dict[str, Any], variant: str) -> str:
    best = f"{row[f'{variant}_ratio']:.2f}x"
    paired = row.get(f"{variant}_ratio_paired")  # absent from runs recorded before it was measured
    return best if paired is None else f"{paired:.3f}x ({best})"


def render_markdown(results: dict[str, Any]) -> str:
    """The results document as Markdown tables (the sections it holds, in a fixed order)."""
    s = results["sections"]
    lines = _machine_md(results)
    if results.get("lessons"):
        lines += _lessons_md(results["lessons"])
    if "hello" in s:
        lines += _hello_md(s["hello"])
    if "names" in s:
        lines += _names_md(s["names"])
    if "char" in s:
        lines += _char_md(s["char"])
    if "checks" in s:
        lines += _checks_md(s["checks"])
        lines += _guard_md(s["checks"])
    return "\n".join(lines).rstrip() + "\n"


# --- command line ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bench_lessons.add_arguments(parser)
    parser.set_defaults(only=None)
    parser.add_argument("--tag", help="name of the results file (default: device type and name)")
    parser.add_argument("--out", help="write the JSON here instead of benchmarks/results/<tag>.json")
    parser.add_argument("--checks-rounds", type=int, help="rounds of bench_checks (default 9; quick 1)")
    parser.add_argument(
        "--markdown", metavar="JSON", help="print the tables of a saved results file and stop"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        results = json.loads(Path(args.markdown).read_text())
        print(render_markdown(results), end="")
        return results
    try:
        only = [s.strip() for s in (args.only or ",".join(SECTIONS)).split(",") if s.strip()]
        unknown = [s for s in only if s not in SECTIONS]
        if unknown:
            raise ValueError(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    except ValueError as err:
        parser.error(str(err))
    cfg = bench_lessons.config_from_args(args)
    results = run_all(cfg, [s for s in SECTIONS if s in only], checks_rounds=args.checks_rounds)
    out = args.out or (
        None if args.quick else RESULTS / f"{args.tag or machine_tag(results['machine'])}.json"
    )
    if out:
        bench_lessons.write_json(out, results)
        print(f"[run] wrote {out}")
    print()
    print(render_markdown(results), end="")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
