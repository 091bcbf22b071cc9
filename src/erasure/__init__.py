"""erasure: an orchestrator for GDPR data-subject requests.

The public API: the connector contract, the domain values, the error tree, the plugin
markers, and the orchestrator entry points.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .connector import CallContext, Connector, ConnectorSettings, current_call
from .errors import (
    AuthError,
    CapabilityNotSupported,
    ConfigError,
    ConnectorError,
    ErasureError,
    PermanentError,
    PluginError,
    TransientError,
    UsageError,
)
from .hookspecs import hookimpl, hookspec
from .models import (
    Action,
    Capability,
    Finding,
    Identifier,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    Outcome,
    Policy,
    Record,
    RequestType,
    Subject,
)
from .plugins import ConnectorRegistry, PluginHost

try:
    __version__ = version("erasure-orchestrator")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "Action",
    "AuthError",
    "CallContext",
    "Capability",
    "CapabilityNotSupported",
    "ConfigError",
    "Connector",
    "ConnectorError",
    "ConnectorRegistry",
    "ConnectorSettings",
    "ErasureError",
    "Finding",
    "Identifier",
    "IdentifierType",
    "ItemOutcome",
    "ItemStatus",
    "Outcome",
    "PermanentError",
    "PluginError",
    "PluginHost",
    "Policy",
    "Record",
    "RequestType",
    "Subject",
    "TransientError",
    "UsageError",
    "__version__",
    "current_call",
    "hookimpl",
    "hookspec",
]
