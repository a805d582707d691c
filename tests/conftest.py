"""Suite-wide settings: tiny RNNs on a shared 2-core machine run far faster on one thread."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
