"""Plugin module of the ``sql`` connector (entry point ``erasure.connectors: sql``)."""

from __future__ import annotations

from typing import Any

from erasure import hookimpl

from .connector import SqlConnector

__all__ = ["erasure_register_connectors"]


@hookimpl
def erasure_register_connectors(registry: Any) -> None:
    """Register the ``sql`` connector."""
    registry.add(SqlConnector)
