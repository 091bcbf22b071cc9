"""Plugin module of the ``mail`` connector (entry point ``erasure.connectors: mail``)."""

from __future__ import annotations

from typing import Any

from erasure import hookimpl

from .connector import MailConnector

__all__ = ["erasure_register_connectors"]


@hookimpl
def erasure_register_connectors(registry: Any) -> None:
    """Register the ``mail`` connector."""
    registry.add(MailConnector)
