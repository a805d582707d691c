"""The benchmark scripts live in ``benchmarks/`` (not a package): put that folder on ``sys.path`` so the tests
import them as ``run.py`` does (``import bench_checks``, ``import bench_lessons``, ``import _course``).

The lesson data is read through ``RNNSHAPES_DATA``; when it is unset it defaults to the repository's
``../shared/data`` (where CI and the project machines keep it). Downloads are off.
"""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
SHARED_DATA = REPO.parent / "shared" / "data"

if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))


@pytest.fixture(scope="session", autouse=True)
def _lesson_data() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("RNNSHAPES_DATA", "").strip():
            mp.setenv("RNNSHAPES_DATA", str(SHARED_DATA))
        mp.setenv("RNNSHAPES_OFFLINE", "1")
        yield
