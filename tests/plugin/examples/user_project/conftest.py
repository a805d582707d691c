"""A user's conftest. Plugins load before any conftest: record which heavy modules they imported."""

import sys

import pytest

IMPORTED_BEFORE_CONFTEST = sorted(name for name in ("torch", "jaxtyping") if name in sys.modules)


def pytest_report_header(config):
    return f"user conftest: heavy modules imported before it: {IMPORTED_BEFORE_CONFTEST or 'none'}"


@pytest.fixture(scope="session")
def trained_once(request):
    """Stands for a session-scoped training fixture: its record travels with the next test report."""
    from rnnshapes.pytest_plugin import make_record, record_training

    record_training(
        request,
        make_record(
            name="session-fixture", device="cpu", steps=3, seconds=0.01, metric=1.0, target=1.0, reached=True
        ),
    )
    return 42
