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
