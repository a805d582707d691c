"""The exceptions are shown, pickled and caught under their public names."""

import pickle
import traceback

import pytest

import rnnshapes
import rnnshapes.testing
from rnnshapes import CheckpointError, DataError, ShapeError, TrainingError
from rnnshapes.testing import CheckFailed, ConvergenceFailed, DeviceUnavailable

PUBLIC = [
    (rnnshapes, ShapeError),
    (rnnshapes, DataError),
    (rnnshapes, TrainingError),
    (rnnshapes, CheckpointError),
    (rnnshapes.testing, CheckFailed),
    (rnnshapes.testing, DeviceUnavailable),
]


@pytest.mark.parametrize(("package", "error"), PUBLIC, ids=[e.__name__ for _, e in PUBLIC])
def test_tracebacks_name_the_public_path_and_errors_pickle(package, error):
    assert getattr(package, error.__name__) is error
    line = traceback.format_exception_only(error("what went wrong"))[-1]
    assert line == f"{package.__name__}.{error.__name__}: what went wrong\n"
    again = pickle.loads(pickle.dumps(error("what went wrong")))
    assert type(again) is error and str(again) == "what went wrong"


def test_convergence_failed_keeps_its_result_and_public_name():
    error = ConvergenceFailed("did not converge", result={"steps": 3})
    assert type(error).__module__ == "rnnshapes.testing" and error.result == {"steps": 3}
    assert isinstance(error, CheckFailed) and isinstance(error, AssertionError)
