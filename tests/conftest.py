"""Suite-wide settings.

- Tiny RNNs on a shared 2-core machine run far faster on one thread: every test runs with one torch thread.
- The lesson data lives beside the checkout (``../shared/data``), never in it: when ``RNNSHAPES_DATA`` is
  unset and that folder exists, the suite points the package at it (as ``.ci/run`` does), so a plain
  ``pytest`` in a checkout behaves like CI. Set ``RNNSHAPES_DATA`` yourself to use another copy.
"""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    if "RNNSHAPES_DATA" not in os.environ and SHARED_DATA.is_dir():
        os.environ["RNNSHAPES_DATA"] = str(SHARED_DATA)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The lesson trainings first, the tests that reuse a trained lesson last.

    A lesson is trained once per run and the other tests that need it wait on its lock; started first (by
    the first xdist worker), the trainings are done by the time their reusers (predict, generate) come, so
    no worker sits idle waiting for a training the other one has only just begun.
    """

    def order(item: pytest.Item) -> int:
        if "rnn_lesson" not in getattr(item, "fixturenames", ()):
            return 1
        return 0 if item.path.name == "test_lessons.py" else 2

    items.sort(key=order)  # stable: the order within each group is kept
