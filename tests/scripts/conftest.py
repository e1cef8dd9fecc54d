from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread for the scripts' tiny runs: the tiny tensors gain nothing from more, and on a
    busy machine OpenMP threads stall for whole scheduler slices (up to 10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
