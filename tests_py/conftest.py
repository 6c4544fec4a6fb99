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


@pytest.fixture
def restore():
    """Put back the SIMD level and the libtrix thread count a test changes."""
    import trix

    level, threads = trix.simd_level(), trix.get_num_threads()
    yield
    trix.set_simd_level(level)
    trix.set_num_threads(threads)
