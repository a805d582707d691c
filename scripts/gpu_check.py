"""Driver of scripts/gpu-check: runs each step, times it, and prints one summary table.

Steps (each a subprocess, so one failing step does not hide the others):
  env        torch / CUDA / device facts
  tests      pytest with --rnnshapes-device=cuda (CUDA demanded: absent CUDA is an error, not a skip)
  train      the main job on CUDA: rnnshapes train --all --device cuda
  ddp        the names lesson under torchrun with nccl (GPU only; on the CPU: tests/lessons/test_ddp.py)
  extra      scripts/gpu_extra.py: nn.DataParallel's hidden-state trap and guard under CUDA autocast (GPU only)
  bench      benchmarks/bench_checks.py and benchmarks/bench_lessons.py on the device
With --cpu (the driver's smoke test, run by the suite): env, one lesson test, the parity tests (skipped
without CUDA) and a quick bench_checks; train and ddp are skipped.
Results land in --out (default $OUT, else a temporary folder): gpu-check.log, summary.json, bench JSON.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_step(name: str, cmd: list[str], log, timeout: float, env: dict[str, str]) -> dict:
    print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
    log.write(f"\n=== {name}: {' '.join(cmd)}\n")
    log.flush()
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = (
            124,
            (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""),
        )
        out += f"\n[timed out after {timeout:.0f} s]"
    seconds = time.perf_counter() - start
    log.write(out)
    log.flush()
    lines = out.strip().splitlines()
    print("\n".join(lines[-25:]), flush=True)
    # the line that says most: pytest's closing count, a DDP result, else the last line
    key = [ln for ln in lines if re.search(r"\d+ (passed|failed)|target (met|MISSED)", ln)]
    return {"step": name, "rc": rc, "seconds": round(seconds, 1), "last": (key or lines or [""])[-1].strip()}


def _plugin_installed() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == "rnnshapes" for ep in entry_points(group="pytest11"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cpu", action="store_true", help="run the steps on the CPU with quick budgets (CI mode)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    )
    parser.add_argument("--skip", action="append", default=[], help="skip a step (env, tests, ddp, bench)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.cpu else "cuda"
    py = sys.executable
    env = dict(os.environ)
    data = ROOT.parent / "shared" / "data"
    if "RNNSHAPES_DATA" not in env:
        for candidate in (ROOT / ".device" / "data", data):
            if candidate.is_dir():
                env["RNNSHAPES_DATA"] = str(candidate)
                break
    env.setdefault("RNNSHAPES_CACHE", str(out / "cache"))
    steps: list[tuple[str, list[str], float]] = [  # (name, command, timeout in seconds)
        (
            "env",
            [py, "-c", "import torch, platform; print('torch', torch.__version__, 'python', platform.python_version(), "
             "'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"],
            60,
        ),
    ]  # fmt: skip
    plugin = [] if _plugin_installed() else ["-p", "rnnshapes.pytest_plugin"]  # the GPU box has no install
    pytest = [py, "-m", "pytest", *plugin, "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:benchmark"]
    if args.cpu:
        tests = [*pytest, "--rnnshapes-device=cpu", "tests/lessons/test_lessons.py", "tests/lessons/test_parity.py",
                 "-k", "hello-sequence or parity"]  # fmt: skip
        ddp = None  # two gloo processes are tests/lessons/test_ddp.py, in the suite
        bench = [
            py,
            "benchmarks/bench_checks.py",
            "--quick",
            "--rounds",
            "1",
            "--json",
            str(out / "bench_checks.json"),
        ]
    else:
        tests = [*pytest, "--rnnshapes-device=cuda", "-n", "4", "tests/lessons", "tests/testing", "tests/models",
                 "tests/core", "--deselect", "tests/lessons/test_gpu_check.py", "--junitxml", str(out / "tests.xml")]  # fmt: skip
        ddp = [py, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "1", "--master-addr",
               "127.0.0.1", "--master-port", "29577", "-m", "rnnshapes.cli.distributed", "names", "--device", "cuda",
               "--out", str(out / "ddp")]  # fmt: skip
        bench = [py, "benchmarks/run.py", "--device", "cuda", "--seeds", "20", "--checks-rounds", "1",
                 "--out", str(out / "bench.json")]  # fmt: skip
    train = (
        None
        if args.cpu
        else [py, "-m", "rnnshapes.cli", "train", "--all", "--device", "cuda", "--no-progress"]
    )
    steps += (
        [("tests", tests, 150)]
        + ([("train", train, 60)] if train else [])
        + ([("ddp", ddp, 60)] if ddp else [])
        + ([] if args.cpu else [("extra", [py, "scripts/gpu_extra.py"], 60)])
    )
    steps += [("bench", bench, 150)]
    results = []
    with open(out / "gpu-check.log", "w") as log:
        for name, cmd, timeout in steps:
            if name in args.skip:
                continue
            results.append(run_step(name, cmd, log, timeout, env))
    print(f"\n{'step':8s} {'status':8s} {'seconds':>8s}  last line")
    for r in results:
        print(
            f"{r['step']:8s} {'ok' if r['rc'] == 0 else 'FAIL(' + str(r['rc']) + ')':8s} {r['seconds']:8.1f}  {r['last'][:100]}"
        )
    (out / "summary.json").write_text(json.dumps({"device": device, "steps": results}, indent=2))
    print(f"\nlog and results: {out}")
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
