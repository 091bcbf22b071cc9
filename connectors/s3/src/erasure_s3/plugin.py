"""Plugin module of the ``s3`` connector (entry point ``erasure.connectors: s3``)."""

from __future__ import annotations

from typing import Any

from erasure import hookimpl

from .connector import S3Connector

__all__ = ["erasure_register_connectors"]


@hookimpl
def erasure_register_connectors(registry: Any) -> None:
    """Register the ``s3`` connector."""
    registry.add(S3Connector)
