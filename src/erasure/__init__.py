"""erasure: an orchestrator for GDPR data-subject requests.

The public API: the connector contract, the domain values, the error tree, the plugin
markers, and the orchestrator entry points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    AuthError,
    BlockedError,
    CapabilityNotSupported,
    ConfigError,
    ConnectorError,
    ErasureError,
    PermanentError,
    PluginError,
    TransientError,
    UsageError,
)
from .models import (
    Action,
    Capability,
    Correction,
    CorrectionType,
    Finding,
    Identifier,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    ObjectionScope,
    Outcome,
    Policy,
    Record,
    RequestType,
    Subject,
)

if TYPE_CHECKING:
    from .connector import (
        RETENTION_SUBJECT,
        CallContext,
        Connector,
        ConnectorSettings,
        current_call,
        in_call,
        months_before,
    )
    from .hookspecs import hookimpl, hookspec
    from .plugins import ConnectorRegistry, PluginHost

# Imported on first use (PEP 562): the command line answers `--help` and bad input without
# loading pydantic, pluggy and the entry-point machinery.
_LAZY = {
    "CallContext": "connector", "Connector": "connector", "ConnectorSettings": "connector",
    "current_call": "connector", "in_call": "connector", "hookimpl": "hookspecs",
    "hookspec": "hookspecs",
    "RETENTION_SUBJECT": "connector", "months_before": "connector",
    "ConnectorRegistry": "plugins", "PluginHost": "plugins",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("erasure-orchestrator")
        except PackageNotFoundError:  # running from a source tree without install
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Action",
    "AuthError",
    "BlockedError",
    "CallContext",
    "Capability",
    "CapabilityNotSupported",
    "ConfigError",
    "Connector",
    "ConnectorError",
    "ConnectorRegistry",
    "ConnectorSettings",
    "Correction",
    "CorrectionType",
    "ErasureError",
    "Finding",
    "Identifier",
    "IdentifierType",
    "ItemOutcome",
    "ItemStatus",
    "ObjectionScope",
    "Outcome",
    "PermanentError",
    "PluginError",
    "PluginHost",
    "Policy",
    "RETENTION_SUBJECT",
    "Record",
    "RequestType",
    "Subject",
    "TransientError",
    "UsageError",
    "__version__",
    "current_call",
    "hookimpl",
    "in_call",
    "hookspec",
    "months_before",
]
