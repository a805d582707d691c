"""Lecture 14's pairs: a Shakespeare line without case and spaces (the source) and the line as written (the
target), a fixed held-out split, batches with lengths, and the character error rate of a decoded batch.

The course's ``TextDataset`` (``text_loader.py``) pairs every non-empty, stripped line of
``shakespeare.txt.gz`` with its lower-cased, space-removed form, so a model learns to restore case and spaces
(``"thisissungkim.iloveyou."`` -> ``"This is Sung Kim. I love you."``). Measured on the file:

==========================================================  ==========
lines (stripped, non-empty)                                 32,777
of them with a source of at most 40 characters              29,793
characters of the targets (the lines as written)            64 (``PAIRS_ALPHABET``)
characters of the sources (lower-cased, no spaces)          37
==========================================================  ==========

Sequences are encoded with three special indices before the characters: :data:`PAD` = 0 fills a batch up
to its longest sequence, :data:`BOS` = 1 starts the decoder's input, :data:`EOS` = 2 ends every target; the
character ``alphabet[i]`` is index ``i + 3``.
"""

from collections.abc import Sequence
from typing import NamedTuple

import torch
from jaxtyping import Int64
from torch import Tensor

from ..core._errors import DataError
from ._text import shakespeare_lines

PAD, BOS, EOS = 0, 1, 2
"""The special indices: padding, begin-of-sequence (the decoder's first input), end-of-sequence."""

SPECIALS = 3
"""How many special indices come before the characters."""

PAIRS_ALPHABET = " !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
"""The 64 characters of the Shakespeare lines as written, sorted (checked against the file by the tests)."""

MAX_SOURCE = 40
"""The lessons' longest source line (characters after lower-casing and removing spaces): 91% of the lines."""


def source_of(line: str) -> str:
    """The course's source for a line: lower-cased, every space removed."""
    return line.lower().replace(" ", "")


class Pair(NamedTuple):
    source: str
    target: str


def restore_pairs(max_source: int | None = MAX_SOURCE) -> list[Pair]:
    """Every stripped, non-empty line of the Shakespeare file as ``(source, target)``, in the file's order.

    Args:
        max_source: keep only lines whose source has at most this many characters (``None``: all).

    Raises:
        DataError: the file cannot be found or read.
    """
    pairs = [Pair(source_of(line), line) for line in shakespeare_lines(lower=False, remove_spaces=False)]
    if max_source is not None:
        pairs = [p for p in pairs if len(p.source) <= max_source]
    return pairs


def split_pairs(pairs: Sequence[Pair], held_out: float = 0.1) -> tuple[list[Pair], list[Pair]]:
    """A fixed split: the last ``held_out`` share of the lines (in the file's order) is held out.

    The held-out part keeps each distinct line once and drops every line that also occurs in the training
    part (speaker names such as ``"ROMEO:"`` recur all through the plays): it measures lines never seen.

    Returns:
        ``(train, held_out)``.
    """
    if not 0.0 < held_out < 1.0:
        raise DataError(f"held_out must be between 0 and 1 (exclusive), got {held_out}")
    cut = len(pairs) - round(len(pairs) * held_out)
    train, rest = list(pairs[:cut]), pairs[cut:]
    seen = {p.target for p in train}
    kept: list[Pair] = []
    for p in rest:
        if p.target not in seen:
            seen.add(p.target)
            kept.append(p)
    if not train or not kept:
        raise DataError(f"{len(pairs)} pairs are too few to split with held_out={held_out}")
    return train, kept


class PairBatch(NamedTuple):
    """Encoded pairs, padded with :data:`PAD`, batch first.

    * **source** ``(N, S)``: the source characters.
    * **source_lengths** ``(N,)``: each source's length, in ``1..S`` (on the CPU, as packing wants them).
    * **target_in** ``(N, T)``: :data:`BOS` then the target: the decoder's input under teacher forcing.
    * **target_out** ``(N, T)``: the target then :data:`EOS`: what the decoder must predict at each step.
    * **target_lengths** ``(N,)``: ``len(target) + 1`` (the EOS counted), in ``1..T``.

    where N = pairs, S = longest source, T = longest target + 1.
    """

    source: Int64[Tensor, "batch source"]
    source_lengths: Int64[Tensor, " batch"]
    target_in: Int64[Tensor, "batch target"]
    target_out: Int64[Tensor, "batch target"]
    target_lengths: Int64[Tensor, " batch"]


def _lookup(alphabet: str) -> dict[str, int]:
    return {c: i + SPECIALS for i, c in enumerate(alphabet)}


def encode_text(text: str, alphabet: str = PAIRS_ALPHABET) -> list[int]:
    """The indices of ``text``'s characters (``alphabet[i]`` is ``i + 3``).

    Raises:
        DataError: a character is not in the alphabet (the message names it and its position).
    """
    index = _lookup(alphabet)
    try:
        return [index[c] for c in text]
    except KeyError as e:
        ch = e.args[0]
        raise DataError(
            f"character {ch!r} at position {text.index(ch)} is not in the alphabet of {len(alphabet)} "
            f"characters {alphabet!r}"
        ) from None


def decode_indices(indices: Sequence[int] | Tensor, alphabet: str = PAIRS_ALPHABET) -> str:
    """Characters of ``indices`` up to the first :data:`EOS` (special indices are left out)."""
    flat = indices.tolist() if isinstance(indices, Tensor) else list(indices)
    out = []
    for i in flat:
        if i == EOS:
            break
        if i >= SPECIALS:
            out.append(alphabet[i - SPECIALS])
    return "".join(out)


def _pad(rows: list[list[int]]) -> Tensor:
    longest = max(len(r) for r in rows)
    out = torch.full((len(rows), longest), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def encode_sources(sources: Sequence[str], alphabet: str = PAIRS_ALPHABET) -> tuple[Tensor, Tensor]:
    """Sources as a padded ``(N, S)`` batch and their lengths ``(N,)``.

    Raises:
        DataError: no sources, an empty source, or a character outside the alphabet.
    """
    if not sources:
        raise DataError("no sources to encode")
    if any(not s for s in sources):
        raise DataError(f"source {[i for i, s in enumerate(sources) if not s][0]} is empty")
    rows = [encode_text(s, alphabet) for s in sources]
    return _pad(rows), torch.tensor([len(r) for r in rows], dtype=torch.long)


def encode_pairs(pairs: Sequence[Pair], alphabet: str = PAIRS_ALPHABET) -> PairBatch:
    """Pairs as one padded :class:`PairBatch` (see there for the shapes).

    Raises:
        DataError: no pairs, an empty source, or a character outside the alphabet.
    """
    source, source_lengths = encode_sources([p.source for p in pairs], alphabet)
    targets = [encode_text(p.target, alphabet) for p in pairs]
    return PairBatch(
        source,
        source_lengths,
        _pad([[BOS, *t] for t in targets]),
        _pad([[*t, EOS] for t in targets]),
        torch.tensor([len(t) + 1 for t in targets], dtype=torch.long),
    )


def edit_distance(
    a: Int64[Tensor, "batch time"], a_lengths: Tensor, b: Int64[Tensor, "batch time"], b_lengths: Tensor
) -> Int64[Tensor, " batch"]:
    """The Levenshtein distance between each row of ``a`` and of ``b`` (insertions, deletions, substitutions).

    Computed for the whole batch at once, one row of the table per position of ``a``: within a row, the
    left-to-right dependency ``d[i][j] <= d[i][j-1] + 1`` is a running minimum
    (``d[i][j] = j + min_{k<=j} (e[k] - k)``), so each row is a handful of tensor operations.

    Args:
        a, b: padded index sequences ``(N, A)`` and ``(N, B)`` (anything past a row's length is ignored).
        a_lengths, b_lengths: the lengths ``(N,)``.

    Returns:
        The distances ``(N,)``.
    """
    n, width = b.shape[0], b.shape[1] + 1
    device = b.device
    a_lengths, b_lengths = a_lengths.to(device), b_lengths.to(device)
    cols = torch.arange(width, device=device)  # (B+1,)
    prev = cols.expand(n, width).clone()  # d[0][j] = j
    result = prev.gather(1, b_lengths[:, None]).squeeze(1)  # a empty: distance = len(b)
    for i in range(1, a.shape[1] + 1):
        cost = (a[:, i - 1 : i] != b).long()  # (N, B): 0 where the characters match
        edge = torch.full((n, 1), i, device=device, dtype=torch.long)
        step = torch.minimum(prev[:, 1:] + 1, prev[:, :-1] + cost)  # deletion or substitution/match
        candidate = torch.cat([edge, step], dim=1)  # (N, B+1)
        row = torch.cummin(candidate - cols, dim=1).values + cols  # insertions: a running minimum
        result = torch.where(a_lengths == i, row.gather(1, b_lengths[:, None]).squeeze(1), result)
        prev = row
    return result


def character_error_rate(predicted: Sequence[str], targets: Sequence[str]) -> tuple[float, float]:
    """``(cer, exact)``: total edit distance / total target characters, and the share of exact lines."""
    if len(predicted) != len(targets) or not targets:
        raise DataError(f"need as many predictions as targets (> 0), got {len(predicted)} and {len(targets)}")
    distances = line_edit_distances(predicted, targets)
    total = sum(len(t) for t in targets)
    exact = sum(p == t for p, t in zip(predicted, targets, strict=True))
    return sum(distances) / max(total, 1), exact / len(targets)


def line_edit_distances(predicted: Sequence[str], targets: Sequence[str]) -> list[int]:
    """The edit distance of each predicted line to its target."""
    codes = [[ord(c) + 1 for c in s] for s in predicted]  # +1: 0 is the padding
    wanted = [[ord(c) + 1 for c in s] for s in targets]
    a, b = _pad([c or [0] for c in codes]), _pad([w or [0] for w in wanted])
    a_len = torch.tensor([len(c) for c in codes])
    b_len = torch.tensor([len(w) for w in wanted])
    return edit_distance(a, a_len, b, b_len).tolist()
