"""Fixtures shared by the core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def two_torch_threads() -> Iterator[None]:
    """Run the test with at most 2 torch CPU threads (as the CPU budget assumes), then restore the count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    yield
    torch.set_num_threads(previous)
