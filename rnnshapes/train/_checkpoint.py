"""Checkpoints: a trained model with the configuration that rebuilds it, written atomically, read safely.

A checkpoint is a plain dictionary saved with ``torch.save``: ``format``, the model's class name (one of
``rnnshapes.models``), its ``config`` (plain values), its ``state_dict`` and free ``meta`` (plain values).
It is read with ``torch.load(weights_only=True)``: nothing in the file is ever unpickled as code.
"""

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import models
from ..core._errors import CheckpointError

FORMAT = "rnnshapes-checkpoint/1"


def save_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any] | None = None
) -> Path:
    """Save ``model`` (a ``rnnshapes.models`` class with a ``config``) atomically to ``path``.

    The file is written to a temporary file in the same folder and renamed into place, so a reader never
    sees half a checkpoint, and an interrupted save leaves the previous file intact.
    """
    cls = type(model).__name__
    if getattr(models, cls, None) is not type(model) or not isinstance(getattr(model, "config", None), dict):
        raise CheckpointError(f"save_checkpoint takes a model from rnnshapes.models with a config; got {cls}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "class": cls,
        "config": dict(getattr(model, "config")),  # noqa: B009 (nn.Module.__getattr__ types it as Tensor | Module)
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    expect_class: str | None = None,
    expect_config: dict[str, Any] | None = None,  # every key given must match the saved config
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by ``save_checkpoint``: ``(model, meta)``, the model in eval mode.

    Raises:
        CheckpointError: the file is missing, corrupt, not an rnnshapes checkpoint, or was saved for another
            model class or configuration than expected. The message names the file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: train first (rnnshapes train LESSON) or check the path"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(e).__name__}: {_first_line(e)}). It may be "
            "truncated or corrupt: delete it and train again."
        ) from None
    except Exception as e:  # weights_only refusal (pickle.UnpicklingError) and friends
        raise CheckpointError(
            f"{path} holds objects that are not plain tensors and values ({type(e).__name__}); rnnshapes never "
            "unpickles code from a file. Delete it and train again."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rnnshapes checkpoint (format {FORMAT!r} expected)")
    cls_name, config, state = payload.get("class"), payload.get("config"), payload.get("state_dict")
    if not isinstance(cls_name, str) or not isinstance(config, dict) or not isinstance(state, dict):
        raise CheckpointError(
            f"{path} is damaged: it lacks a model class, a config or the weights. Delete it and train again."
        )
    if expect_class is not None and cls_name != expect_class:
        raise CheckpointError(
            f"{path} holds a {cls_name}, not a {expect_class}: delete it or pick the right file"
        )
    diff = {k: (config.get(k), v) for k, v in (expect_config or {}).items() if config.get(k) != v}
    if diff:  # every key the caller names must match (the model may hold more, at their defaults)
        raise CheckpointError(
            f"{path} was saved with another configuration (saved vs expected: {diff}); delete it and train again"
        )
    cls = getattr(models, cls_name, None)
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise CheckpointError(f"{path} names an unknown model class {cls_name!r}")
    try:
        model = cls(**config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"{path} holds a configuration a {cls_name} cannot be built from ({_first_line(e)}): delete it and "
            "train again"
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit a {cls_name}{config}: {_first_line(e)}") from None
    model.to(map_location)
    model.eval()
    return model, dict(payload.get("meta", {}))


def _first_line(e: BaseException) -> str:
    """The first line of an exception's message (some, like an empty file's EOFError, have none)."""
    lines = str(e).splitlines()
    return lines[0][:200] if lines else "no message"
