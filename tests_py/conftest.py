"""Shared pytest fixtures."""
import pytest


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: torch's thread barriers cost more than the work on a small shared machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
