"""Plugin module of the ``salesforce`` connector (entry point in ``erasure.connectors``)."""

from __future__ import annotations

from typing import Any

from erasure import hookimpl

from .connector import SalesforceConnector

__all__ = ["erasure_register_connectors"]


@hookimpl
def erasure_register_connectors(registry: Any) -> None:
    """Register the ``salesforce`` connector."""
    registry.add(SalesforceConnector)
