"""The ``rnnshapes`` command: list the lessons, train them to their targets, and use the trained models.

    rnnshapes lessons
    rnnshapes train LESSON | --all [--device cpu|cuda|auto] [--seed N] [--threads N]
    rnnshapes predict NAME [NAME ...] [--top K]
    rnnshapes generate --prime TEXT [--length N] [--temperature T]
    rnnshapes trace LESSON | package.module:factory [--input "batch=4 time=9 input=5" ...] [--format F]
    rnnshapes restore TEXT [TEXT ...]

Bad arguments, missing data and unusable checkpoints print one line and exit with status 2; a training
run that misses a target exits with status 1.
"""

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ..core._argtypes import float_between, int_at_least
from ..core._errors import CheckpointError, DataError, ShapeError, TrainingError
from . import _trace

_positive_int = int_at_least(1)
_seed = int_at_least(0)
_temperature = float_between(0.0, 10.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnshapes",
        description="The PyTorchZeroToAll RNN lessons with checked shapes: train them to their targets.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("lessons", help="list the lessons, their targets and budgets")

    train = sub.add_parser("train", help="train lessons to their targets and show a table")
    which = train.add_mutually_exclusive_group(required=True)
    which.add_argument("lesson", nargs="?", help="a lesson name (see 'rnnshapes lessons')")
    which.add_argument("--all", action="store_true", help="every lesson, in course order")
    _device_arg(train)
    train.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    train.add_argument(
        "--threads", type=_positive_int, default=1, help="CPU threads (default: 1, fastest here)"
    )
    train.add_argument(
        "--nproc",
        type=_positive_int,
        default=1,
        help="train with DistributedDataParallel on N processes (names only; default: 1)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars")

    predict = sub.add_parser(
        "predict", help="the likeliest countries of names (trains the names lesson once)"
    )
    predict.add_argument("names", nargs="+", metavar="NAME")
    predict.add_argument("--top", type=_positive_int, default=3, help="countries per name (default: 3)")
    _device_arg(predict)

    generate = sub.add_parser(
        "generate", help="write Shakespeare-like text (trains the char-RNN lesson once)"
    )
    generate.add_argument(
        "--prime", required=True, help="text to start from (lower-case letters, punctuation)"
    )
    generate.add_argument(
        "--length",
        type=int_at_least(1, 100_000),
        default=200,
        help="characters to write, 1-100000 (default: 200)",
    )
    generate.add_argument("--temperature", type=_temperature, default=0.8, help="0 = greedy (default: 0.8)")
    generate.add_argument("--seed", type=_seed, default=0, help="sampling seed (default: 0)")
    _device_arg(generate)
    _trace.add_parser(sub)

    restore = sub.add_parser(
        "restore",
        help="restore the case and spaces of text (trains the seq2seq-attention lesson once)",
    )
    restore.add_argument(
        "texts",
        nargs="+",
        metavar="TEXT",
        help="text to restore, e.g. thisissungkim.iloveyou. (read lower-cased, spaces removed)",
    )
    _device_arg(restore)
    return parser


def _device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda", "auto"],
        default="cpu",
        help="cpu (default), cuda, or auto (cuda when present)",
    )


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise _UsageError(
            f"--device cuda, but torch.cuda.is_available() is False (torch {torch.__version__})"
        )
    return choice


class _UsageError(Exception):
    pass


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _describe_budget(budget: Any) -> str:
    steps = f"{budget.max_steps} steps"
    return steps if budget.max_seconds == float("inf") else f"{steps} (stop at {budget.max_seconds:g} s)"


def _time_goal(lesson: Any, device: str, seconds: float) -> str:
    """``"<= 30 s: yes"``: the lesson's time goal on this device type, reported and never enforced."""
    goal = lesson.time_goals.get(device)
    if goal is None:
        return "-"
    return f"<= {goal:g} s: {'yes' if seconds <= goal else 'no'}"


def cmd_lessons(args: argparse.Namespace) -> int:
    from .. import lessons

    rows = []
    for lesson in lessons.LESSONS.values():
        budget = lesson.budget
        rows.append(
            {
                "lesson": lesson.name,
                "course": lesson.course,
                "title": lesson.title,
                "target": lesson.target.describe(),
                "budget": _describe_budget(budget) if budget else "shape checks",
                "time goal": lesson.describe_time_goal() or "-",
            }
        )
    print(_table(rows, ["lesson", "course", "title", "target", "budget", "time goal"]))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .. import lessons
    from ..train import save_checkpoint

    device = _device(args.device)
    chosen = lessons.names() if args.all else [args.lesson]
    for name in chosen:
        lessons.get(name)  # unknown names fail before anything trains
    if args.nproc > 1:
        from .distributed import launch

        if chosen != ["names"]:
            raise _UsageError("--nproc trains the names lesson only: rnnshapes train names --nproc N")
        from ..data import load_names

        for split in ("train", "test"):  # missing or corrupt data: one error here, not one per process
            load_names(split)
        return launch(args.nproc, device=device, seed=args.seed, threads=args.threads)
    rows = []
    for name in chosen:
        lesson = lessons.get(name)
        print(
            f"{lesson.course} {lesson.name}: {lesson.title} (target: {lesson.target.describe()})", flush=True
        )
        result = lesson.run(
            device=device, seed=args.seed, threads=args.threads, progress=False if args.no_progress else None
        )
        if result.reached and result.model is not None:
            save_checkpoint(
                lessons.checkpoint_path(lesson, device, args.seed), result.model, result.summary()
            )
        value = result.metric
        rows.append(
            {
                "lesson": name,
                "device": result.device,
                "steps": result.steps,
                "seconds": f"{result.seconds:.1f}",
                "metric": f"{result.target.metric}={value:.4g}"
                if isinstance(value, float)
                else f"{result.target.metric}={value}",
                "target": result.target.describe(),
                "met": "yes" if result.reached else "NO",
                "time goal": _time_goal(lesson, torch.device(result.device).type, result.seconds),
            }
        )
    print()
    print(_table(rows, ["lesson", "device", "steps", "seconds", "metric", "target", "met", "time goal"]))
    if any(str(r["time goal"]).endswith(": no") for r in rows):
        print(
            "\ntime goals are measured on an idle machine (2-core CPU, one thread); a busy machine misses them "
            "without changing the outcome: the step budget decides whether a target is met",
        )
    missed = [str(r["lesson"]) for r in rows if r["met"] != "yes"]
    if missed:
        print(f"\ntarget missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from .. import lessons
    from ..data import COUNTRIES, encode_names

    device = _device(args.device)
    model, _ = lessons.get("names").trained(device=device)
    inputs, lengths = encode_names(args.names)
    with torch.no_grad():
        probs = torch.softmax(model(inputs.to(device), lengths), dim=-1).cpu()  # (batch, classes)
    top = min(args.top, len(COUNTRIES))
    for name, row in zip(args.names, probs, strict=True):
        values, indices = row.topk(top)
        guesses = ", ".join(
            f"{COUNTRIES[i]} {p:.1%}" for p, i in zip(values.tolist(), indices.tolist(), strict=True)
        )
        print(f"{name}: {guesses}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from .. import lessons
    from ..models import CharRNN

    device = _device(args.device)
    trained, _ = lessons.get("char-rnn").trained(device=device)
    assert isinstance(trained, CharRNN)
    model: CharRNN = trained
    prime = args.prime.lower().replace(" ", "")
    alphabet: str = model.config["alphabet"]
    unknown = sorted({c for c in prime if c not in alphabet})
    if not prime or unknown:
        raise _UsageError(
            f"--prime must be non-empty and use only the lesson's symbols {alphabet!r} (spaces are removed); "
            f"unknown: {unknown}"
        )
    generator = torch.Generator(device=device).manual_seed(args.seed)
    print(prime + model.generate(prime, args.length, temperature=args.temperature, generator=generator))
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    return _trace.cmd_trace(args, _device(args.device))


def cmd_restore(args: argparse.Namespace) -> int:
    from .. import lessons
    from ..models import Seq2SeqAttention
    from ..models._seq2seq import prepare_source

    device = _device(args.device)
    lesson = lessons.get("seq2seq-attention")
    config = lesson.recipe.model if lesson.recipe else {}
    for text in args.texts:  # every text is read before anything trains: a bad one costs nothing
        try:
            prepare_source(text, **{k: config[k] for k in ("alphabet", "max_source") if k in config})
        except ValueError as e:
            raise _UsageError(f"cannot restore {text!r}: {e}") from None
    trained, _ = lesson.trained(device=device)
    assert isinstance(trained, Seq2SeqAttention)
    for text, restored in zip(args.texts, trained.restore(args.texts), strict=True):
        print(restored if len(args.texts) == 1 else f"{text} -> {restored}")
    return 0


COMMANDS = {
    "lessons": cmd_lessons,
    "train": cmd_train,
    "predict": cmd_predict,
    "generate": cmd_generate,
    "trace": cmd_trace,
    "restore": cmd_restore,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (_UsageError, _trace.UsageError, DataError, CheckpointError, ShapeError, TrainingError) as e:
        first, *rest = str(e).splitlines()
        print(f"rnnshapes {args.command}: error: {first}", file=sys.stderr)
        for line in rest:
            print(f"  {line}", file=sys.stderr)
        return 2
    except KeyError as e:  # an unknown lesson
        print(f"rnnshapes {args.command}: error: {e.args[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnshapes: interrupted", file=sys.stderr)
        return 130
