"""The on/off switch of every check: ``RNNSHAPES_CHECKS=0`` at import, or ``with checks(False):``."""

import os
from collections.abc import Iterator
from contextlib import contextmanager


def _env_enabled() -> bool:
    return os.environ.get("RNNSHAPES_CHECKS", "1").strip().lower() not in {"0", "false", "no", "off"}


class _State:
    enabled: bool = _env_enabled()
    # remember the call signatures that passed (shapes, dtypes, devices, the module's layout and weights), so
    # that a training loop pays the full check once per signature; off only to measure the full check
    memo: bool = True


def checks_enabled() -> bool:
    """Whether checks run now (``RNNSHAPES_CHECKS=0`` at import, or ``checks(False)``, turn them off)."""
    return _State.enabled


@contextmanager
def checks(enabled: bool) -> Iterator[None]:
    """Turn shape checks on or off inside a ``with`` block (restored afterwards, also on error).

    ``RNNSHAPES_CHECKS=0`` in the environment at import time goes further: ``shapecheck`` then returns the
    undecorated function, so disabled checks cost nothing at all.
    """
    before = _State.enabled
    _State.enabled = bool(enabled)
    try:
        yield
    finally:
        _State.enabled = before
