import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    """Two CPU cores are shared: one thread, and a fixed seed so model inits are the same on every run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
