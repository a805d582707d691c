"""Exceptions and warnings of ``rnnshapes.testing``. Torch-free."""

from typing import Any


class CheckFailed(AssertionError):
    """A check found a fault in the model under test.

    It is an ``AssertionError``, so pytest reports it as a test failure (not an error) and
    ``pytest.raises(AssertionError, match=...)`` catches it. The message is meant to be read alone: what was
    compared, where it differed (indices), by how much, and the usual cause.
    """


class ConvergenceFailed(CheckFailed):
    """Training did not reach its target within its step (or time) budget.

    ``result`` holds the :class:`~rnnshapes.testing.ConvergenceResult` with the whole curve; the pytest plugin
    uses it to add a report section with a sparkline and a rerun command line.
    """

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


class DeviceUnavailable(RuntimeError):
    """The device a check was asked to use does not exist here (for example CUDA on a CPU-only machine).

    Not a failure of the model: a caller turns it into a skip, e.g.
    ``except DeviceUnavailable as e: pytest.skip(str(e))``. The plugin's ``rnn_checks`` fixture does this for
    you (or fails, when CUDA was demanded with ``--rnnshapes-device=cuda`` or ``all``).
    """


class VacuousCheckWarning(UserWarning):
    """A check passed without proving anything: its inputs cannot show the fault it looks for.

    Batch independence on a batch of 1 (no other example to leak from), causality over one time step (no
    future), packed-versus-unbatched or padding invariance without padding (every length equals the padded
    time), a state_dict round trip whose fresh model already gives the original's outputs. pytest lists these
    warnings in its warnings summary; make them errors in CI with
    ``filterwarnings = ["error::rnnshapes.testing.VacuousCheckWarning"]`` (pytest's ini) or
    ``-W error::rnnshapes.testing.VacuousCheckWarning``.
    """


# Tracebacks and pytest reports name the public path (rnnshapes.testing.CheckFailed), not this private module.
for _error in (CheckFailed, ConvergenceFailed, DeviceUnavailable, VacuousCheckWarning):
    _error.__module__ = "rnnshapes.testing"

del _error


VACUOUS_BATCH = (
    "check_batch_independence: the batch holds 1 example, so no other example can leak into it: the check "
    "proved nothing. Pass a batch of 3 or more (a .view leak spares example 0)"
)
VACUOUS_STEP = (
    "check_causal: the sequence has 1 time step, so there is no later step to peek at: the check proved "
    "nothing. Pass a sequence of 3 or more steps"
)


def warn_vacuous(message: str) -> None:
    """Warn with :class:`VacuousCheckWarning`, attributed to the first caller outside rnnshapes (the user's test,
    whether it called the check directly or through the plugin's ``rnn_checks``)."""
    __tracebackhide__ = True  # made an error (-W error::...), pytest shows the user's line, not this one
    import os
    import sys
    import warnings

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    warnings.warn(message, VacuousCheckWarning, stacklevel=level)
