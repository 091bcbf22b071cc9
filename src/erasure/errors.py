"""One exception tree for erasure. The type carries the retry meaning.

::

    ErasureError                  base of everything erasure raises on purpose
    ├── ConnectorError            raised by connectors; the host decides what happens next
    │   ├── TransientError        retry later (timeouts, 429/503, locks); may carry retry_after
    │   ├── PermanentError        retrying cannot help (bad mapping, FK blocks delete, 4xx)
    │   │   └── AuthError         credentials missing, wrong or lacking a permission
    │   └── CapabilityNotSupported  the connector cannot do this action (for this item)
    ├── ConfigError               the configuration is invalid (lists every problem at once)
    ├── PluginError               a plugin failed to load or registered something invalid
    └── UsageError                bad input from a user: malformed identifier, unknown request

The host retries only ``TransientError``. Connectors never sleep or loop on their own.
Messages must never contain personal data: name the table, field or item count, not the value.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "CapabilityNotSupported",
    "ConfigError",
    "ConnectorError",
    "ErasureError",
    "PermanentError",
    "PluginError",
    "TransientError",
    "UsageError",
]


class ErasureError(Exception):
    """Base class of every error erasure raises on purpose."""


class ConnectorError(ErasureError):
    """An error raised by a connector while talking to its system."""


class TransientError(ConnectorError):
    """A failure that may go away: the host retries with backoff.

    ``retry_after`` (seconds) is honoured when the system said how long to wait
    (HTTP Retry-After, a rate-limit reset).
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """A failure retrying cannot fix; the system's task fails, the others go on."""


class AuthError(PermanentError):
    """Credentials are missing or wrong, or lack a permission (e.g. hard delete)."""


class CapabilityNotSupported(ConnectorError):
    """The connector (or this item) does not support the requested action."""


class ConfigError(ErasureError):
    """The configuration is invalid. ``problems`` lists every problem found, each one line."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0])
        else:
            super().__init__(
                f"{len(self.problems)} problems in the configuration:\n  "
                + "\n  ".join(self.problems)
            )


class PluginError(ErasureError):
    """A plugin failed to load, or registered an invalid connector."""


class UsageError(ErasureError):
    """Bad input from a user: a malformed identifier, an unknown request id, a bad option."""
