"""pytest plugin shipped with erasure (entry point ``pytest11``).

Makes the contract suite available without extra configuration and offers fixtures for
connector authors.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .memory import MemoryStore


@pytest.fixture
def erasure_memory_reset() -> Iterator[None]:
    """Forget every named in-memory store after the test."""
    yield
    MemoryStore.reset()
