"""Exceptions of ``rnnshapes.testing``. Torch-free."""

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


# Tracebacks and pytest reports name the public path (rnnshapes.testing.CheckFailed), not this private module.
for _error in (CheckFailed, ConvergenceFailed, DeviceUnavailable):
    _error.__module__ = "rnnshapes.testing"

del _error
