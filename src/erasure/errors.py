"""One exception tree for erasure. The type carries the retry meaning.

::

    ErasureError                  base of everything erasure raises on purpose
    ├── ConnectorError            raised by connectors; the host decides what happens next
    │   ├── TransientError        retry later (timeouts, 429/503, locks, a reset connection);
    │   │                         may carry retry_after
    │   ├── BlockedError          needs an operator (configuration, a read-only store, a
    │   │   │                     missing folder or table); the task waits for `erasure retry`
    │   │   └── AuthError         credentials missing, wrong or lacking a permission
    │   ├── PermanentError        the item can never be done (a row the system's rules keep,
    │   │                         an item that is not the connector's)
    │   └── CapabilityNotSupported  the connector cannot do this action (for this item)
    ├── ConfigError               the configuration is invalid (lists every problem at once)
    ├── PluginError               a plugin failed to load or registered something invalid
    └── UsageError                bad input from a user: malformed identifier, unknown request

The three failure classes mean the same in the host and every connector:

- *transient*: the host retries within the call's budget, then defers the task to a later
  run (``not_before`` in the future); the request stays open.
- *blocked*: the task waits for an operator; the request stays open, its identifiers kept
  (encrypted); ``erasure status`` shows the error, ``erasure retry`` resumes the task, and
  ``erasure run`` leaves it alone until the request's due-date margin, when it fails. An
  error that is none of these classes (a connector bug) is blocked too: nothing ends a
  request because a connector could not say what went wrong.
- *permanent*: the item can never be done; the task fails (the request goes on elsewhere).

``system_wide=True`` on any connector error says the whole system fails this way whatever
the subjects (a bad mapping, a corrupt shared object): the host then neither splits the
call to find a culprit subject nor calls it again for the rest of the batch.

Connectors never sleep or loop on their own. Messages must never contain personal data:
name the table, field or item count, not the value.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BlockedError",
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
    """An error raised by a connector while talking to its system.

    ``system_wide``: the error does not depend on the subjects of the call (see the module
    docstring); the host fails or defers the whole call at once.
    """

    def __init__(self, message: str = "", *, system_wide: bool = False) -> None:
        super().__init__(message)
        self.system_wide = system_wide


class TransientError(ConnectorError):
    """A failure that may go away: the host retries with backoff.

    ``retry_after`` (seconds) is honoured when the system said how long to wait
    (HTTP Retry-After, a rate-limit reset).
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None,
                 system_wide: bool = False) -> None:
        super().__init__(message, system_wide=system_wide)
        self.retry_after = retry_after


class BlockedError(ConnectorError):
    """A failure only an operator can fix (configuration, a permission, a read-only or
    missing store): the task waits, unchanged, until ``erasure retry``."""


class AuthError(BlockedError):
    """Credentials are missing or wrong, or lack a permission (e.g. hard delete)."""


class PermanentError(ConnectorError):
    """The item can never be done (the system's rules refuse it, it is not the
    connector's): the system's task fails, the request's other systems go on."""


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
