"""Lessons 14_1 and 14_2: how they build their task, and the character error rate by source length."""

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data._pairs import (
    MAX_SOURCE,
    PAD,
    Pair,
    PairBatch,
    character_error_rate,
    encode_pairs,
    line_edit_distances,
    restore_pairs,
    split_pairs,
)

if TYPE_CHECKING:
    from ._registry import Lesson, Task

HELD_OUT = 0.1
"""The share of the lines (the last ones of the file) held out; seen lines are dropped from it."""

LENGTH_BUCKETS: tuple[tuple[int, int], ...] = ((1, 10), (11, 20), (21, 30), (31, 40))
"""Source-length buckets (characters, both ends included) of the length measurement."""


def lesson_pairs(max_source: int = MAX_SOURCE) -> tuple[list[Pair], list[Pair]]:
    """The lessons' ``(train, held_out)`` pairs: lines of at most ``max_source`` source characters."""
    return split_pairs(restore_pairs(max_source), HELD_OUT)


def eval_subset(held_out: Sequence[Pair], every: int) -> list[Pair]:
    """Every ``every``-th held-out line: the fixed lines a lesson evaluates while it trains."""
    return list(held_out[::every])


def _logits(out: Tensor | tuple[Tensor, Tensor]) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


def decode(model: nn.Module, pairs: Sequence[Pair], device: torch.device, chunk: int = 1024) -> list[str]:
    """Greedy decoding of the pairs' sources with a seq2seq model (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    alphabet: str = model.alphabet  # type: ignore[assignment]
    out: list[str] = []
    try:
        with torch.no_grad():
            for start in range(0, len(pairs), chunk):
                batch = encode_pairs(pairs[start : start + chunk], alphabet)
                source = batch.source.to(device)
                tokens, lengths = model.greedy(source, batch.source_lengths)  # type: ignore[operator]
                for row, n in zip(tokens.cpu().tolist(), lengths.tolist(), strict=True):
                    out.append("".join(alphabet[i - 3] for i in row[:n] if i >= 3))
    finally:
        model.train(was_training)
    return out


def cer_by_source_length(
    model: nn.Module,
    pairs: Sequence[Pair],
    device: str | torch.device = "cpu",
    buckets: Sequence[tuple[int, int]] = LENGTH_BUCKETS,
    predicted: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The character error rate and exact-line share of greedy decoding, per source-length bucket.

    ``predicted``: the model's restorations of ``pairs`` when they are at hand (else decoded here).
    """
    if predicted is None:
        predicted = decode(model, pairs, torch.device(device))
    distances = line_edit_distances(predicted, [p.target for p in pairs])
    rows = []
    for low, high in buckets:
        idx = [i for i, p in enumerate(pairs) if low <= len(p.source) <= high]
        chars = sum(len(pairs[i].target) for i in idx)
        rows.append(
            {
                "bucket": f"{low}-{high}",
                "lines": len(idx),
                "cer": round(sum(distances[i] for i in idx) / chars, 4) if chars else None,
                "exact": round(sum(predicted[i] == pairs[i].target for i in idx) / len(idx), 4)
                if idx
                else None,
            }
        )
    return rows


def seq2seq_task(lesson: "Lesson", device: torch.device, generator: torch.Generator) -> "Task":
    """Pairs (source: lower-cased, no spaces; target: the line) -> teacher forcing; greedy decoding scored.

    The training lines are sorted by source length and cut into batches of neighbours (little padding); each
    pass shuffles the batches and shifts where they are cut. Every evaluation decodes the same held-out lines
    (every ``eval_every_line``-th) greedily and reports the character error rate and the exact-line share.
    """
    from ._registry import Task

    assert lesson.recipe is not None
    extra = lesson.recipe.extra
    train, held_out = lesson_pairs(extra.get("max_source", MAX_SOURCE))
    evaluated = eval_subset(held_out, extra.get("eval_every_line", 4))
    model = lesson.build_model().to(device)
    alphabet: str = model.alphabet  # type: ignore[assignment]
    train = sorted(train, key=lambda p: (len(p.source), len(p.target)))
    data = PairBatch(*(t.to(device) if i != 1 else t for i, t in enumerate(encode_pairs(train, alphabet))))
    target_lengths = data.target_lengths.cpu()
    n = lesson.recipe.batch_size

    def batches() -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        for _ in itertools.count():
            shift = int(torch.randint(0, n, (), generator=generator))
            starts = torch.arange(shift, len(train) - n + 1, n)
            for start in starts[torch.randperm(len(starts), generator=generator)].tolist():
                sl = slice(start, start + n)
                src_len = data.source_lengths[sl]
                s, t = int(src_len.max()), int(target_lengths[sl].max())
                yield data.source[sl, :s], src_len, data.target_in[sl, :t], data.target_out[sl, :t]

    def loss_fn(m: nn.Module, batch: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
        source, lengths, target_in, target_out = batch
        logits = _logits(m(source, lengths, target_in))  # (batch, target, vocab): the whole target at once
        return F.cross_entropy(logits.flatten(0, 1), target_out.flatten(), ignore_index=PAD)

    def evaluate(m: nn.Module) -> dict[str, Any]:
        predicted = decode(m, evaluated, device)
        cer, exact = character_error_rate(predicted, [p.target for p in evaluated])
        return {"cer": round(cer, 4), "exact": round(exact, 4)}

    return Task(model, batches(), loss_fn, evaluate)
