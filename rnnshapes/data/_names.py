"""The names data set of lesson 12_4 (which country does a surname come from?) and its batching.

Files ``names_train.csv.gz`` (13,374 rows) and ``names_test.csv.gz`` (6,700 rows): gzipped CSV without a
header, every field quoted, CRLF line ends, rows ``"name","country"``; three names carry a trailing comma
inside the quotes (``"Lytkin,"``), kept as the data has them. 18 countries, the same in both splits.

Characters are encoded as in the lesson: a name's time step ``t`` is ``ord(name[t])``, an index into an
embedding of :data:`NAMES_VOCAB_SIZE` = 128 rows (ASCII). Index :data:`PAD_INDEX` = 0 never occurs in a name
and pads shorter names in a batch.

Names with letters outside ASCII are normalised first (:func:`normalize_name`): Unicode NFKD, then combining
marks dropped, so ``"Jürgen"`` becomes ``"Jurgen"``. A character that is still not ASCII (``"ß"``, ``"Ø"``,
``"李"``) raises :class:`~rnnshapes.DataError` naming it, its position and the name, where the original
course crashes with an ``IndexError`` inside the embedding.
"""

import csv
import gzip
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from jaxtyping import Int64
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from ..core._errors import DataError
from ._locate import find_data_file

COUNTRIES: tuple[str, ...] = (
    "Arabic",
    "Chinese",
    "Czech",
    "Dutch",
    "English",
    "French",
    "German",
    "Greek",
    "Irish",
    "Italian",
    "Japanese",
    "Korean",
    "Polish",
    "Portuguese",
    "Russian",
    "Scottish",
    "Spanish",
    "Vietnamese",
)
"""The 18 countries, sorted; a country's index here is its class id."""

NAMES_VOCAB_SIZE = 128
"""Rows of the names embedding: one per ASCII code (index = ``ord(character)``)."""

PAD_INDEX = 0
"""The padding index of a names batch (ASCII NUL, which never occurs in a name)."""

NAMES_FILES: dict[str, str] = {"train": "names_train.csv.gz", "test": "names_test.csv.gz"}
"""Data file of each split."""

_COUNTRY_INDEX = {c: i for i, c in enumerate(COUNTRIES)}


def country_index(country: str) -> int:
    """The class id of a country (its index in :data:`COUNTRIES`).

    Raises:
        DataError: the country is not one of the 18.
    """
    try:
        return _COUNTRY_INDEX[country]
    except KeyError:
        raise DataError(
            f"unknown country {country!r}; the names data set has these 18: {list(COUNTRIES)}"
        ) from None


def normalize_name(name: str) -> str:
    """Make a name encodable: ASCII names unchanged, others by NFKD with combining marks dropped.

    ``"Jürgen"`` becomes ``"Jurgen"``, ``"Émile"`` becomes ``"Emile"``, ``"Dvořák"`` becomes ``"Dvorak"``.

    Raises:
        DataError: the name is empty, or a character is still not in ASCII codes 1-127 after normalisation
            (``"ß"``, ``"Ø"``, ``"李"``, or the padding code 0); the message names the character, its position
            and the name.
    """
    if not name:
        raise DataError(
            "empty name: a name needs at least one character (a sequence of time 0 cannot be packed)"
        )
    if name.isascii() and "\x00" not in name:
        return name
    decomposed = unicodedata.normalize("NFKD", name)
    out = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    for pos, ch in enumerate(out):
        code = ord(ch)
        if code == PAD_INDEX or code >= NAMES_VOCAB_SIZE:
            where = f"position {pos} of {name!r}"
            if out != name:
                where = f"position {pos} of {out!r} (from {name!r})"
            what = "is the padding code 0" if code == PAD_INDEX else "is not ASCII"
            raise DataError(
                f"character {ch!r} (U+{code:04X}) at {where} {what}: names are encoded as ASCII codes 1-127 "
                f"(index = ord(character), embedding of {NAMES_VOCAB_SIZE} rows) and accents are already "
                f"dropped by NFKD; spell the name in ASCII (e.g. 'ss' for 'ß', 'O' for 'Ø')."
            )
    if not out:
        raise DataError(f"name {name!r} is empty after dropping its combining marks")
    return out


def encode_name(name: str) -> Int64[Tensor, " time"]:
    """Encode one name as ASCII codes, after :func:`normalize_name`.

    Outputs:
        - **indices** of shape ``(L,)``, int64: ``ord`` of each character, all in ``1..127``.

    where: L = length of the normalised name (time).

    Raises:
        DataError: see :func:`normalize_name`.
    """
    return torch.tensor([ord(c) for c in normalize_name(name)], dtype=torch.long)


def decode_name(indices: Tensor) -> str:
    """Turn ASCII codes back into a name; padding (0) is dropped, so a padded row decodes too."""
    return "".join(chr(i) for i in indices.reshape(-1).tolist() if i != PAD_INDEX)


def read_names_file(path: Path) -> list[tuple[str, int]]:
    """Read a names CSV file (gzipped if its name ends in ``.gz``) into ``(name, country_index)`` rows.

    Names pass through :func:`normalize_name`.

    Raises:
        DataError: a row does not have exactly two fields, or holds an unknown country or an unusable name;
            the message gives the file and line.
    """
    rows: list[tuple[str, int]] = []
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            for line, row in enumerate(csv.reader(f), start=1):
                if len(row) != 2:
                    raise DataError(
                        f"{path}, line {line}: expected 2 fields 'name,country', got {len(row)}: {row!r}"
                    )
                try:
                    rows.append((normalize_name(row[0]), country_index(row[1])))
                except DataError as err:
                    raise DataError(f"{path}, line {line}: {err}") from None
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"cannot read the names file {str(path)!r}: {type(err).__name__}: {err}") from None
    return rows


def load_names(split: Literal["train", "test"] = "train") -> list[tuple[str, int]]:
    """The names data set of one split, as ``(name, country_index)`` pairs in file order.

    The file is found by :func:`~rnnshapes.data.find_data_file` (``RNNSHAPES_DATA``, the cache, or a
    download). Duplicates are kept, as in the lesson.

    Args:
        split: ``"train"`` (13,374 rows) or ``"test"`` (6,700 rows).

    Raises:
        DataError: unknown split, the file cannot be found, or it holds a row the loader cannot use.
    """
    if split not in NAMES_FILES:
        raise DataError(f"unknown names split {split!r}; use 'train' or 'test'")
    return read_names_file(find_data_file(NAMES_FILES[split]))


class NameDataset(Dataset[tuple[str, int]]):
    """A map-style dataset of ``(name, country_index)`` pairs; batch it with :func:`collate_names`.

    Args:
        split: ``"train"`` or ``"test"``; ignored when ``rows`` is given.
        rows: the pairs to hold instead of loading a split (e.g. a subset, or names of your own).

    Example:
        ``DataLoader(NameDataset("train"), batch_size=256, shuffle=True, collate_fn=collate_names)``
    """

    def __init__(
        self, split: Literal["train", "test"] = "train", rows: Iterable[tuple[str, int]] | None = None
    ) -> None:
        self.rows: list[tuple[str, int]] = load_names(split) if rows is None else list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[str, int]:
        return self.rows[index]

    @property
    def countries(self) -> tuple[str, ...]:
        """The class names, index = class id (:data:`COUNTRIES`)."""
        return COUNTRIES


class NameBatch(NamedTuple):
    """A padded batch of names (see :func:`collate_names`); unpacks as ``inputs, lengths, labels``."""

    inputs: Int64[Tensor, "*seq"]
    """ASCII codes padded with 0: ``(N, L)`` if batch_first else ``(L, N)``."""
    lengths: Int64[Tensor, " batch"]
    """Each name's length, on the CPU (as ``pack_padded_sequence`` wants)."""
    labels: Int64[Tensor, " batch"]
    """Each name's country index."""


def encode_names(
    names: Sequence[str], batch_first: bool = True
) -> tuple[Int64[Tensor, "*seq"], Int64[Tensor, " batch"]]:
    """Encode raw names for prediction: padded ASCII codes and lengths, in the given order.

    Args:
        names: one or more names; non-ASCII letters are normalised (:func:`normalize_name`).
        batch_first: layout of the padded tensor.

    Outputs:
        - **inputs** of shape ``(N, L)`` if batch_first else ``(L, N)``, int64, padded with 0.
        - **lengths** of shape ``(N,)``, int64, on the CPU.

    where: N = number of names (batch), L = length of the longest name (time).

    Raises:
        DataError: no names, or a name that cannot be encoded.
    """
    if len(names) == 0:
        raise DataError("no names to encode: give at least one name")
    seqs = [encode_name(n) for n in names]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    return pad_sequence(seqs, batch_first=batch_first, padding_value=PAD_INDEX), lengths


def collate_names(batch: Sequence[tuple[str, int]], batch_first: bool = True) -> NameBatch:
    """Collate ``(name, country_index)`` pairs into a padded batch (a ``DataLoader`` ``collate_fn``).

    The order of the batch is kept (no sorting): pack it with ``enforce_sorted=False``. For
    ``batch_first=False`` use ``functools.partial(collate_names, batch_first=False)``.

    Args:
        batch: the pairs, e.g. from :class:`NameDataset`.
        batch_first: layout of the padded inputs.

    Outputs:
        - **inputs** of shape ``(N, L)`` if batch_first else ``(L, N)``, int64: ASCII codes, padded with 0.
        - **lengths** of shape ``(N,)``, int64, on the CPU: each name's length.
        - **labels** of shape ``(N,)``, int64: each name's country index.

    where: N = batch size, L = length of the longest name in the batch (time).

    Raises:
        DataError: an empty batch, or a name that cannot be encoded.
    """
    if len(batch) == 0:
        raise DataError("cannot collate an empty batch of names")
    names = [name for name, _ in batch]
    inputs, lengths = encode_names(names, batch_first=batch_first)
    labels = torch.tensor([int(label) for _, label in batch], dtype=torch.long)
    return NameBatch(inputs, lengths, labels)
