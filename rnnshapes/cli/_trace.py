"""``rnnshapes trace``: the shape trace of a lesson's model, or of a user's model built by a factory.

    rnnshapes trace names                                   # a lesson, on its example batch
    rnnshapes trace mypkg.models:build --input "batch=4 time=9 input=5"
    rnnshapes trace mypkg.models:build --input "batch=4 time=9 int<128" --input "[9, 3, 6, 1]"
    rnnshapes trace mypkg.models:example                    # the factory returns (model, args[, kwargs])

A factory is called without arguments. It returns the model, and the inputs come from ``--input``: one per
positional argument, either named axes (``batch=4 time=9 input=5``: a random tensor of that shape, float32,
or integers below V with ``int<V``) or a Python literal (``[9, 3, 6, 1]``: ``torch.tensor`` of it). Or it
returns ``(model, args)`` / ``(model, args, kwargs)``, for models whose inputs need more than random numbers
(packed batches, token ids with a structure). Named axes also declare the batch: the axis called ``batch`` of
the first input is the model's batch, and a layer called with another batch gets a note.
"""

import argparse
import ast
import importlib
import sys
from collections.abc import Callable
from typing import Any


class UsageError(Exception):
    pass


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "trace",
        help="the shape of every recurrent, embedding, attention and linear call of one forward",
        description="Run a model once and print every layer call with named axes. TARGET is a lesson "
        "name (see 'rnnshapes lessons') or package.module:factory.",
    )
    p.add_argument("target", metavar="TARGET", help="a lesson name, or package.module:factory")
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="SPEC",
        help="one positional input: named axes ('batch=4 time=9 input=5', 'int<V' for indices) "
        "or a Python literal ('[9, 3, 6, 1]'); repeat for each argument",
    )
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text", help="default: text")
    p.add_argument("--train", action="store_true", help="trace in training mode (default: eval)")
    p.add_argument("--grad", action="store_true", help="trace with gradients (default: no_grad)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs and weights (default: 0)")
    p.add_argument(
        "--device", choices=["cpu", "cuda", "auto"], default="cpu", help="cpu (default), cuda, or auto"
    )


def parse_input(spec: str, generator: Any) -> tuple[Any, int | None]:
    """One ``--input``: the tensor, and the position of its ``batch`` axis (``None`` if it has none)."""
    import torch

    text = spec.strip()
    if text[:1] in "[(-0123456789":
        try:
            return torch.tensor(ast.literal_eval(text)), None
        except (ValueError, SyntaxError, TypeError) as e:
            raise UsageError(f"--input {spec!r}: not a Python literal of numbers ({e})") from None
    shape: list[int] = []
    names: list[str] = []
    high: int | None = None
    for token in text.split():
        if token.startswith("int<"):
            high = _positive(token[4:], spec)
        elif "=" in token:
            name, _, size = token.partition("=")
            names.append(name)
            shape.append(_positive(size, spec))
        else:
            raise UsageError(f"--input {spec!r}: {token!r} is neither name=size nor int<V")
    if not shape:
        raise UsageError(f"--input {spec!r}: no axes; write them as name=size, e.g. 'batch=4 time=9 input=5'")
    if high is not None:
        value = torch.randint(0, high, tuple(shape), generator=generator)
    else:
        value = torch.randn(tuple(shape), generator=generator)
    return value, names.index("batch") if "batch" in names else None


def _positive(text: str, spec: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"--input {spec!r}: {text!r} is not a size >= 1")
    return int(text)


def _factory(target: str) -> Callable[[], Any]:
    module_name, _, attr = target.partition(":")
    sys.path.insert(0, "")  # like python -m: the current directory's packages
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"cannot import {module_name!r}: {e}") from None
    finally:
        sys.path.remove("")
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UsageError(f"{module_name} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]


def lesson_example(name: str, generator: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """A lesson's model and a small example batch: what its page shows."""
    import torch
    from torch import nn

    from .. import lessons
    from ..models import (
        CharRNN,
        HelloEmbedding,
        HelloRNN,
        NamesClassifier,
        PackedEncoder,
        Seq2Seq,
        Seq2SeqAttention,
    )

    lesson = lessons.get(name)
    if name == "cell-basics":
        return nn.LSTM(4, 2, batch_first=True), (torch.randn(3, 5, 4, generator=generator),), {}
    if name == "pack-pad":
        x = torch.randn(4, 7, 3, generator=generator)
        return (
            PackedEncoder(input=3, hidden=5, layers=2, bidirectional=True),
            (x, torch.tensor([5, 2, 7, 1])),
            {},
        )
    model = lesson.build_model()
    if isinstance(model, HelloRNN):
        size, hidden = model.rnn.input_size, model.rnn.hidden_size
        if lesson.course == "12_2":  # one step at a time
            return model.step, (torch.randn(3, size, generator=generator), torch.zeros(1, 3, hidden)), {}
        return model, (torch.randn(3, 6, size, generator=generator),), {}
    if isinstance(model, HelloEmbedding):
        return model, (torch.randint(0, model.embedding.num_embeddings, (3, 6), generator=generator),), {}
    if isinstance(model, NamesClassifier):
        x = torch.randint(1, 128, (4, 9), generator=generator)
        return model, (x, torch.tensor([9, 3, 6, 1])), {}
    if isinstance(model, CharRNN):
        return model, (torch.randint(0, len(model.alphabet), (4, 9), generator=generator),), {}
    if isinstance(model, (Seq2Seq, Seq2SeqAttention)):  # the batch its pages show: 3 sources, their targets
        vocab = model.embedding.num_embeddings
        source = torch.randint(3, vocab, (3, 7), generator=generator)  # batch=3, source=7
        target_in = torch.randint(3, vocab, (3, 9), generator=generator)  # batch=3, target=9
        return model, (source, torch.tensor([7, 3, 5]), target_in), {}
    raise UsageError(f"no example batch for lesson {name!r}: trace it as package.module:factory")


def _to(value: Any, device: str) -> Any:
    if hasattr(value, "to") and not isinstance(value, type):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    return value


def cmd_trace(args: argparse.Namespace, device: str) -> int:
    import torch
    from torch import nn

    from ..core._trace import trace

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    batch_axis = None
    if ":" in args.target:
        made = _factory(args.target)()
        model, call_args, call_kwargs = made, (), {}
        if isinstance(made, tuple):
            model, call_args, call_kwargs = (*made, {})[:3] if len(made) in (2, 3) else (made, (), {})
        if args.input:
            parsed = [parse_input(spec, generator) for spec in args.input]
            call_args = tuple(value for value, _ in parsed)
            batch_axis = parsed[0][1]
        elif not call_args:
            raise UsageError(
                f"{args.target} returned a model without inputs: give them with --input 'batch=4 time=9 input=5'"
            )
    else:
        if args.input:
            raise UsageError("a lesson brings its own example batch; --input is for package.module:factory")
        model, call_args, call_kwargs = lesson_example(args.target, generator)
    target = model.__self__ if not isinstance(model, nn.Module) and hasattr(model, "__self__") else model
    if not isinstance(target, nn.Module):
        raise UsageError(f"{args.target} did not give an nn.Module (got {type(target).__name__})")
    target.to(device)
    call_args = _place(tuple(call_args), device)
    call_kwargs = {k: _place((v,), device)[0] for k, v in call_kwargs.items()}
    try:
        result = trace(
            model, *call_args, train=args.train, grad=args.grad, batch_axis=batch_axis, **call_kwargs
        )
    except Exception as error:
        partial = getattr(error, "rnnshapes_trace", None)
        if partial is None:
            raise
        print(_render(partial, args.format))
        print(f"rnnshapes trace: the model raised {partial.error}", file=sys.stderr)
        return 1
    print(_render(result, args.format))
    return 0


def _place(values: tuple[Any, ...], device: str) -> tuple[Any, ...]:
    """Move tensors to the device, except 1-D integer ones (lengths stay on the CPU, where packing wants them)."""
    import torch

    placed = []
    for v in values:
        lengths = isinstance(v, torch.Tensor) and v.dim() == 1 and not v.is_floating_point()
        placed.append(v if lengths else _to(v, device))
    return tuple(placed)


def _render(t: Any, form: str) -> str:
    if form == "markdown":
        return str(t.markdown()).rstrip()
    if form == "json":
        return str(t.to_json(indent=2))
    return str(t)
