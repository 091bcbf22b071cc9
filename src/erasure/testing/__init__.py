"""Test helpers for connector authors: the contract suite and the in-memory connector.

The contract suite needs pytest; it is imported on first use so that loading the in-memory
connector (a plugin) does not require pytest at run time.
"""

from typing import Any

from .memory import MemoryConnector, MemoryStore

__all__ = [
    "NEIGHBOUR_EMAIL",
    "SUBJECT_EMAIL",
    "ConnectorContract",
    "MemoryConnector",
    "MemoryStore",
    "Seeded",
]


def __getattr__(name: str) -> Any:
    if name in ("ConnectorContract", "Seeded", "SUBJECT_EMAIL", "NEIGHBOUR_EMAIL"):
        from . import contract

        return getattr(contract, name)
    raise AttributeError(name)
