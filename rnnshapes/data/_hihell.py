"""The "hihell" toy data of lessons 12_2 to 12_4: teach an RNN to say "ihello" when it reads "hihell".

Five symbols, ``idx2char = ['h', 'i', 'e', 'l', 'o']``; the input ``"hihell"`` is ``[0, 1, 0, 2, 3, 3]`` and
the target ``"ihello"`` (the input shifted by one: each step predicts the next character) is
``[1, 0, 2, 3, 3, 4]``. One sequence of six steps, so the batch is 1 and time is 6.
"""

from typing import NamedTuple

import torch
from jaxtyping import Float, Int64
from torch import Tensor

from ..core._errors import DataError

HIHELL_IDX2CHAR: tuple[str, ...] = ("h", "i", "e", "l", "o")
"""The five symbols of the hihell lessons; a symbol's index is its class id."""

HIHELL_INPUT = "hihell"
"""What the network reads."""

HIHELL_TARGET = "ihello"
"""What it should output: the next character at every step."""


class HiHell(NamedTuple):
    """The hihell data as tensors (see :func:`hihell_data`)."""

    idx2char: tuple[str, ...]
    """The vocabulary: ``('h', 'i', 'e', 'l', 'o')``."""
    inputs: Int64[Tensor, "batch time"]
    """``"hihell"`` as indices, shape ``(1, 6)``: for an ``nn.Embedding`` (lesson 12_4)."""
    inputs_one_hot: Float[Tensor, "batch time input"]
    """``"hihell"`` one-hot, shape ``(1, 6, 5)``: for a batch_first ``nn.RNN(input_size=5)`` (12_2, 12_3)."""
    targets: Int64[Tensor, "batch time"]
    """``"ihello"`` as indices, shape ``(1, 6)``; ``targets.view(-1)`` is the lesson's ``labels``."""


def hihell_encode(text: str) -> Int64[Tensor, " time"]:
    """Encode a string over ``h i e l o`` as indices into :data:`HIHELL_IDX2CHAR`.

    Raises:
        DataError: a character is not one of the five symbols.
    """
    ids = []
    for pos, ch in enumerate(text):
        try:
            ids.append(HIHELL_IDX2CHAR.index(ch))
        except ValueError:
            raise DataError(
                f"character {ch!r} at position {pos} of {text!r} is not in the hihell vocabulary "
                f"{list(HIHELL_IDX2CHAR)}; use only those five symbols."
            ) from None
    return torch.tensor(ids, dtype=torch.long)


def hihell_decode(indices: Tensor) -> str:
    """Turn indices into :data:`HIHELL_IDX2CHAR` (any shape, read in order) back into a string."""
    return "".join(HIHELL_IDX2CHAR[i] for i in indices.reshape(-1).tolist())


def hihell_data() -> HiHell:
    """The hihell lesson data as fresh tensors.

    Outputs:
        - **inputs** of shape ``(N, L)`` = ``(1, 6)``, int64: ``"hihell"`` = ``[[0, 1, 0, 2, 3, 3]]``.
        - **inputs_one_hot** of shape ``(N, L, H_in)`` = ``(1, 6, 5)``, float32: the same, one-hot.
        - **targets** of shape ``(N, L)`` = ``(1, 6)``, int64: ``"ihello"`` = ``[[1, 0, 2, 3, 3, 4]]``.

    where:

    ====== ===========================================
    N      batch size = 1
    L      sequence length (time) = 6
    H_in   input size = vocabulary size = 5
    ====== ===========================================
    """
    inputs = hihell_encode(HIHELL_INPUT).unsqueeze(0)
    one_hot = torch.nn.functional.one_hot(inputs, num_classes=len(HIHELL_IDX2CHAR)).float()
    targets = hihell_encode(HIHELL_TARGET).unsqueeze(0)
    return HiHell(HIHELL_IDX2CHAR, inputs, one_hot, targets)
