"""Plugin module of the ``notify`` connector (entry point ``erasure.connectors: notify``)."""

from __future__ import annotations

from typing import Any

from erasure import hookimpl

from .connector import NotifyConnector

__all__ = ["erasure_register_connectors"]


@hookimpl
def erasure_register_connectors(registry: Any) -> None:
    """Register the ``notify`` connector."""
    registry.add(NotifyConnector)
