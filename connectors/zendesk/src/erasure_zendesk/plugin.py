"""Plugin module of the ``zendesk`` connector (entry point ``erasure.connectors: zendesk``)."""

from __future__ import annotations

from typing import Any

from erasure import hookimpl

from .connector import ZendeskConnector

__all__ = ["erasure_register_connectors"]


@hookimpl
def erasure_register_connectors(registry: Any) -> None:
    """Register the ``zendesk`` connector."""
    registry.add(ZendeskConnector)
