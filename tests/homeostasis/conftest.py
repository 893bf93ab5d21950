"""Shared fixtures of the homeostasis tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: torch's intra-op threads only add overhead (and contention on a busy
    machine, 10x slower here); restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
