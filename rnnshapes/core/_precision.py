"""Numerical precision switches shared by the lessons' checks and ``rnnshapes.testing``."""

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def tf32_disabled() -> Iterator[None]:
    """Switch TF32 off for CUDA matmuls and cuDNN inside the block, and restore the previous settings after,
    also when the block raises.

    Uses the legacy flags ``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``;
    when the process has set TF32 through the newer ``fp32_precision`` API (where reading the legacy flags
    raises), that API is used instead ("ieee")."""
    matmul = torch.backends.cuda.matmul
    cudnn = torch.backends.cudnn
    try:
        saved = (matmul.allow_tf32, cudnn.allow_tf32)
    except RuntimeError:  # the new fp32_precision API is in use; mixing the two APIs raises
        saved_new = (matmul.fp32_precision, cudnn.fp32_precision)  # type: ignore[attr-defined]
        matmul.fp32_precision = "ieee"  # type: ignore[attr-defined]
        cudnn.fp32_precision = "ieee"  # type: ignore[attr-defined]
        try:
            yield
        finally:
            matmul.fp32_precision, cudnn.fp32_precision = saved_new  # type: ignore[attr-defined]
        return
    matmul.allow_tf32 = False
    cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def autocast_enabled(device: torch.device) -> bool:
    """Whether ``torch.autocast`` is on for ``device``'s type. False for device types autocast does not know
    (``meta``, where ``torch.is_autocast_enabled`` raises): torch runs those calls with the dtypes as given."""
    try:
        return torch.is_autocast_enabled(device.type)
    except RuntimeError:
        return False
