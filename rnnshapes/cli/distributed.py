"""Train the names lesson with DistributedDataParallel, one process per device, launched by ``torchrun``.

    rnnshapes train names --nproc 2                     # starts torchrun for you (127.0.0.1)
    torchrun --standalone --nproc-per-node 2 -m rnnshapes.cli.distributed names --device cpu

gloo on the CPU, nccl on GPUs (one GPU per process: ``cuda:LOCAL_RANK``). Every rank starts from the same
seed and reads its own shard of each epoch (``DistributedSampler``); rank 0 evaluates (the weights are the
same on every rank) and broadcasts the metrics, so every rank stops at the same step. Only rank 0 shows progress and writes the checkpoint.
With ``--out DIR`` every rank writes ``rank<R>.json`` (steps, metric, a sha256 of its weights) so a test can
check that all ranks ended with identical weights. Shape checks stay on inside DDP.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import socket
import sys
import typing
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def weights_digest(model: nn.Module) -> str:
    """A sha256 of every parameter and buffer, in state_dict order (equal weights <=> equal digests)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def worker(
    lesson_name: str, device: str, seed: int, threads: int, out: Path | None, budget_scale: float
) -> int:
    from torch.nn.parallel import DistributedDataParallel as DDP

    from .. import lessons
    from ..lessons._registry import _optimizer as build_optimizer
    from ..lessons._tasks import names_task
    from ..train import fit, save_checkpoint, seed_everything

    cuda = device == "cuda"
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    try:
        lesson = lessons.get(lesson_name)
        if lesson.build_task is not names_task or lesson.recipe is None or lesson.budget is None:
            raise SystemExit(f"DDP trains the names lessons only, not {lesson_name!r}")
        torch.set_num_threads(threads)
        seed_everything(seed)
        generator = torch.Generator().manual_seed(seed)
        task = names_task(lesson, dev, generator, shard=(rank, world))
        model = DDP(task.model, device_ids=[local_rank] if cuda else None)
        # every rank must stop at the same step: no wall-clock limit (it would differ between processes);
        # the rest of the budget (evaluation cadence included) and the optimizer are the recipe's own
        budget = dataclasses.replace(lesson.budget.scaled(budget_scale), max_seconds=float("inf"))
        optimizer, scheduler = build_optimizer(lesson.recipe, model, budget)
        result = fit(
            model,
            task.batches,
            task.loss_fn,
            lambda m: _evaluate_on_rank0(task.train_evaluate or task.evaluate, m.module),  # type: ignore[arg-type]
            lesson.target,
            budget,
            optimizer=optimizer,
            scheduler=scheduler,
            clip=lesson.recipe.clip,
            name=f"{lesson_name} (DDP x{world})",
            device=dev,
            seed=seed,
            threads=threads,
            progress=False if rank != 0 else None,
        )
        digest = weights_digest(task.model)
        summary = {
            **result.summary(),
            "rank": rank,
            "world": world,
            "backend": dist.get_backend(),
            "weights_sha256": digest,
            "shape_checks": _checks_catch_a_wrong_call(task.model, dev),
        }
        if rank == 0:
            if result.reached:
                save_checkpoint(lessons.checkpoint_path(lesson, device, seed), task.model, result.summary())
            print(
                f"{lesson_name}: DDP on {world} processes ({dist.get_backend()}): {result.steps} steps, "
                f"{result.seconds:.1f} s, {result.target.metric}={result.metric}, target "
                f"{'met' if result.reached else 'MISSED'}",
                flush=True,
            )
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"rank{rank}.json").write_text(json.dumps(summary, indent=2))
        return 0 if result.reached else 1
    finally:
        dist.destroy_process_group()


def _checks_catch_a_wrong_call(model: nn.Module, device: torch.device) -> bool:
    """Whether the model's shape checks are on in this process: a call with one length too many must fail."""
    from ..core._errors import ShapeError

    x = torch.ones(2, 3, dtype=torch.long, device=device)  # (batch=2, time=3) indices
    try:
        model(x, torch.tensor([3, 3, 3]))  # three lengths for a batch of two
    except ShapeError:
        return True
    return False


def _evaluate_on_rank0(evaluate: Any, model: nn.Module) -> dict[str, Any]:
    """Rank 0 evaluates (the weights are the same everywhere) and sends the metrics to every rank, so all
    ranks take the same stop decision at the same step."""
    box = [evaluate(model) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return typing.cast(dict[str, Any], box[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(
    nproc: int,
    *,
    lesson: str = "names",
    device: str = "cpu",
    seed: int = 0,
    threads: int = 1,
    out: Path | None = None,
    budget_scale: float = 1.0,
) -> int:
    """Run ``torchrun`` on this machine (127.0.0.1) with ``nproc`` workers; the exit status of the run."""
    import subprocess

    args = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc-per-node", str(nproc),
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
        "-m", "rnnshapes.cli.distributed", lesson,
        "--device", device, "--seed", str(seed), "--threads", str(threads), "--budget-scale", str(budget_scale),
    ]  # fmt: skip
    if out is not None:
        args += ["--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.run(args, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnshapes.cli.distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("lesson", nargs="?", default="names", choices=["names", "names-basic"])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget-scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, help="write rank<R>.json here")
    args = parser.parse_args(argv)
    if "RANK" not in os.environ:
        parser.error("run me under torchrun (or use: rnnshapes train names --nproc N)")
    from ..core._errors import CheckpointError, DataError, ShapeError, TrainingError

    try:
        return worker(args.lesson, args.device, args.seed, args.threads, args.out, args.budget_scale)
    except (DataError, CheckpointError, ShapeError, TrainingError) as e:
        if os.environ.get("RANK") == "0":  # every rank meets the same error: one line, from rank 0
            first, *rest = str(e).splitlines()
            print(f"rnnshapes.cli.distributed: error: {first}", file=sys.stderr)
            for line in rest:
                print(f"  {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
