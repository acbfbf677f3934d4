"""One intra-op thread for the contract tests: on the toy network, thread hand-offs cost more than the arithmetic
(about 6 ms an update with 2 threads on 2 busy cores, 0.4 ms with one)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
