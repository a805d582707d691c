"""Shakespeare text for the char-RNN lessons (13_2 and later): loading, a character vocabulary, batching.

``shakespeare.txt.gz`` is tiny-shakespeare: 1,115,394 characters, 40,000 lines, 65 distinct characters
(letters, space, newline and ``!$&',-.3:;?``). The lesson (``text_loader.py``) strips each line, drops empty
lines, lower-cases and removes spaces. Measured on the file:

==================================================  ============  =========
text                                                characters    symbols
==================================================  ============  =========
raw file                                            1,115,394     65
``load_shakespeare()``: lower-cased, no spaces      945,502       38 (incl. newline)
``shakespeare_lines()``: the lesson's 32,777 lines  905,502       37 (no newline)
==================================================  ============  =========

(The shared data README says 36 symbols; the file has 26 letters, 11 punctuation marks and the newline.)
"""

from collections.abc import Iterable, Iterator, Sequence

import torch
from jaxtyping import Int64
from torch import Tensor

from ..core._errors import DataError
from ._locate import find_data_file

SHAKESPEARE_FILE = "shakespeare.txt.gz"
"""The data file of the char-RNN lessons."""


def _read_shakespeare() -> str:
    import gzip

    path = find_data_file(SHAKESPEARE_FILE)
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            return f.read()
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {str(path)!r}: {type(err).__name__}: {err}") from None


def load_shakespeare(lower: bool = True, remove_spaces: bool = True) -> str:
    """The Shakespeare text as one string, newlines and blank lines kept.

    With the defaults it is prepared as the lesson prepares its lines: lower-cased and without spaces
    (945,502 characters, 38 symbols incl. the newline). ``load_shakespeare(False, False)`` is the file as is.

    Args:
        lower: lower-case the text.
        remove_spaces: delete every space (``" "``); newlines stay.

    Raises:
        DataError: the file cannot be found or read (see :func:`~rnnshapes.data.find_data_file`).
    """
    text = _read_shakespeare()
    if lower:
        text = text.lower()
    if remove_spaces:
        text = text.replace(" ", "")
    return text


def shakespeare_lines(lower: bool = True, remove_spaces: bool = True) -> list[str]:
    """The lesson's lines: each line stripped, empty lines dropped, then lower-cased and without spaces.

    These are the ``srcLines`` of the course's ``TextDataset`` (32,777 lines, 37 symbols); the lesson trains
    on one line at a time, predicting ``line[1:]`` from ``line[:-1]``.

    Args:
        lower: lower-case each line.
        remove_spaces: delete the spaces inside each line.
    """
    lines = [s.strip() for s in _read_shakespeare().splitlines()]
    lines = [s for s in lines if s]
    if lower:
        lines = [s.lower() for s in lines]
    if remove_spaces:
        lines = [s.replace(" ", "") for s in lines]
    return lines


class CharVocab:
    """A character vocabulary: ``itos`` (index to symbol) and ``stoi`` (symbol to index).

    Args:
        itos: the symbols in index order, each a single character, no duplicates.

    Use :meth:`from_text` to build one from a text (symbols sorted by code point), or :meth:`ascii` for the
    lesson's 128 ASCII codes (index = ``ord(c)``). Save ``list(vocab.itos)`` with a model and rebuild the
    vocabulary with ``CharVocab(itos)``.
    """

    def __init__(self, itos: Iterable[str]) -> None:
        self.itos: tuple[str, ...] = tuple(itos)
        if not self.itos:
            raise DataError("a vocabulary needs at least one symbol")
        bad = [s for s in self.itos if not isinstance(s, str) or len(s) != 1]
        if bad:
            raise DataError(f"vocabulary symbols must be single characters; got {bad[:5]!r}")
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dupes = sorted({s for s in self.itos if self.itos.count(s) > 1})
            raise DataError(f"vocabulary symbols must be unique; repeated: {dupes!r}")
        codes = [ord(s) for s in self.itos]
        self._lookup = torch.full((max(codes) + 1,), -1, dtype=torch.long)
        self._lookup[torch.tensor(codes, dtype=torch.long)] = torch.arange(len(codes), dtype=torch.long)

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The vocabulary of the distinct characters of ``text``, sorted by code point."""
        return cls(sorted(set(text)))

    @classmethod
    def ascii(cls) -> "CharVocab":
        """The lesson's 128-symbol ASCII vocabulary: index = ``ord(c)`` for codes 0-127."""
        return cls(chr(i) for i in range(128))

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.itos == other.itos

    def __hash__(self) -> int:
        return hash(self.itos)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} symbols: {''.join(self.itos)!r})"

    def encode(self, text: str) -> Int64[Tensor, " time"]:
        """Encode a string as indices.

        Outputs:
            - **indices** of shape ``(L,)``, int64, each in ``0..V-1``.

        where: L = ``len(text)`` (time), V = ``len(vocab)``.

        Raises:
            DataError: a character is not in the vocabulary (the message names it and its position).
        """
        if not text:
            return torch.empty(0, dtype=torch.long)
        codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
        inside = codes < len(self._lookup)
        ids = torch.where(inside, self._lookup[codes.clamp(max=len(self._lookup) - 1)], -1)
        missing = (ids < 0).nonzero()
        if len(missing):
            pos = int(missing[0])
            ch = text[pos]
            raise DataError(
                f"character {ch!r} (U+{ord(ch):04X}) at position {pos} is not in the vocabulary of "
                f"{len(self)} symbols {''.join(self.itos)!r}; build the vocabulary from text that holds it, "
                f"or prepare the text the same way (lower-cased, spaces removed?)."
            )
        return ids

    def decode(self, indices: Tensor | Sequence[int]) -> str:
        """Turn indices (any shape, read in order) back into a string.

        Raises:
            DataError: an index is outside ``0..V-1``.
        """
        flat = indices.reshape(-1).tolist() if isinstance(indices, Tensor) else list(indices)
        size = len(self.itos)
        for i in flat:
            if not 0 <= i < size:
                raise DataError(f"index {i} is outside the vocabulary of {size} symbols (0..{size - 1})")
        return "".join(self.itos[i] for i in flat)


def split_train_val(
    ids: Int64[Tensor, " time"], val_fraction: float = 0.1
) -> tuple[Int64[Tensor, " time"], Int64[Tensor, " time"]]:
    """Cut an encoded text in two: the first part for training, the last ``val_fraction`` for validation.

    A contiguous split (no shuffling), so no window of the validation text was seen in training.

    Args:
        ids: the encoded text, shape ``(L,)``.
        val_fraction: share of the text kept for validation, ``0 < val_fraction < 1``.

    Returns:
        ``(train, val)``, views of ``ids`` of ``L - round(L * val_fraction)`` and ``round(L * val_fraction)``
        steps.

    Raises:
        DataError: ``ids`` is not 1-d, the fraction is outside (0, 1), or either part would have fewer than 2
            steps (no (input, target) pair).
    """
    if ids.dim() != 1:
        raise DataError(f"expected an encoded text of shape (time,), got shape {tuple(ids.shape)}")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    n_val = round(len(ids) * val_fraction)
    if n_val < 2 or len(ids) - n_val < 2:
        raise DataError(
            f"a text of {len(ids)} steps is too short to split with val_fraction={val_fraction}: "
            "each part needs at least 2 steps"
        )
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def _check_text(ids: Tensor, length: int, batch_size: int) -> None:
    if ids.dim() != 1:
        raise DataError(f"expected an encoded text of shape (time,), got shape {tuple(ids.shape)}")
    if length < 1 or batch_size < 1:
        raise DataError(
            f"length and batch_size must be at least 1, got length={length}, batch_size={batch_size}"
        )
    if len(ids) < length + 1:
        raise DataError(
            f"the text has {len(ids)} steps, too short for one window of length {length} + 1; "
            "use a shorter length"
        )


def random_windows(
    ids: Int64[Tensor, " time"], length: int, batch_size: int, *, generator: torch.Generator | None = None
) -> Int64[Tensor, "batch time"]:
    """Sample ``batch_size`` windows of ``length + 1`` consecutive steps at random places of the text.

    Split a window with :func:`teacher_forcing_pair` into the input (its first ``length`` steps) and the
    target (its last ``length``, one step ahead).

    Args:
        ids: the encoded text, shape ``(T,)``.
        length: steps of the input (L); each window holds ``L + 1``.
        batch_size: windows to sample (N).
        generator: a seeded ``torch.Generator`` for reproducible sampling (on the CPU).

    Outputs:
        - **windows** of shape ``(N, L + 1)``, int64, on the device of ``ids``.

    where: N = batch size, L = sequence length (time), T = length of the text.

    Raises:
        DataError: ``ids`` not 1-d, or shorter than ``L + 1``.
    """
    _check_text(ids, length, batch_size)
    starts = torch.randint(0, len(ids) - length, (batch_size,), generator=generator)
    offsets = starts.unsqueeze(1) + torch.arange(length + 1)
    return ids[offsets.to(ids.device)]


def teacher_forcing_pair(
    windows: Int64[Tensor, "batch time"],
) -> tuple[Int64[Tensor, "batch time"], Int64[Tensor, "batch time"]]:
    """Split windows ``(N, L + 1)`` into ``(input, target)``, both ``(N, L)``: the target is one step ahead.

    Raises:
        DataError: ``windows`` is not 2-d with at least 2 steps.
    """
    if windows.dim() != 2 or windows.shape[1] < 2:
        raise DataError(
            f"expected windows of shape (batch, time + 1) with time >= 1, got {tuple(windows.shape)}"
        )
    return windows[:, :-1], windows[:, 1:]


def text_batches(
    ids: Int64[Tensor, " time"],
    length: int,
    batch_size: int,
    *,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[Int64[Tensor, "batch time"], Int64[Tensor, "batch time"]]]:
    """One epoch over the text in batch-first ``(input, target)`` batches for teacher forcing.

    The text is cut into ``(T - 1) // L`` chunks of ``L + 1`` steps that overlap by one step, so every step
    after the first is a target exactly once per epoch (a tail shorter than ``L`` is left out). The chunks
    come in random order (``shuffle=True``, drawn from ``generator``) or in text order.

    Args:
        ids: the encoded text, shape ``(T,)``.
        length: steps per chunk (L).
        batch_size: chunks per batch (N); the last batch may be smaller unless ``drop_last``.
        shuffle: shuffle the chunks.
        generator: a seeded ``torch.Generator`` for a reproducible order.
        drop_last: leave out a last batch smaller than ``batch_size``.

    Yields:
        ``(input, target)``, each of shape ``(N, L)``, int64; ``target[:, t] == input[:, t + 1]`` within a
        chunk.

    Raises:
        DataError: ``ids`` not 1-d, or shorter than ``L + 1``.
    """
    _check_text(ids, length, batch_size)
    n_chunks = (len(ids) - 1) // length
    starts = torch.arange(n_chunks) * length
    if shuffle:
        starts = starts[torch.randperm(n_chunks, generator=generator)]
    offsets = torch.arange(length + 1)
    for begin in range(0, n_chunks, batch_size):
        batch_starts = starts[begin : begin + batch_size]
        if drop_last and len(batch_starts) < batch_size:
            return
        windows = ids[(batch_starts.unsqueeze(1) + offsets).to(ids.device)]
        yield windows[:, :-1], windows[:, 1:]
