"""The ``zendesk`` connector: users, identities, tickets and comments in Zendesk Support."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from erasure import (
    AuthError,
    Capability,
    Connector,
    Correction,
    Finding,
    IdentifierType,
    ItemOutcome,
    ObjectionScope,
    Record,
    Subject,
)

from .client import ZendeskClient
from .erase import Eraser
from .exporting import Exporter, Lookup
from .locate import Locator
from .restrict import Restrictor
from .rights import Rights
from .settings import ZendeskSettings

__all__ = ["ZendeskConnector"]


class _NoRequestDetails(logging.Filter):
    """zenpy and urllib3 log every URL and payload at DEBUG: search queries and bodies
    carry emails and phones, so those records never leave their loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


_QUIET = _NoRequestDetails()
for _name in ("zenpy.lib.api", "zenpy.lib.response", "zenpy.lib.generator",
              "zenpy.lib.request", "zenpy.lib.endpoint", "urllib3.connectionpool"):
    if _QUIET not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_QUIET)


class ZendeskConnector(Connector):
    """A Zendesk Support account: users found by every email and phone identity (and by
    Zendesk user id, in the id space config gives it), their tickets in every role,
    tickets where they only commented, archived tickets, and (optionally) other people's
    tickets quoting them.

    Erasure deletes their tickets as jobs (PENDING, then ``poll``) and for good, redacts
    their text where tickets are kept, and soft- then permanently deletes the user. See the
    package README.
    """

    name = "zendesk"
    version = "0.1.0"
    Settings = ZendeskSettings
    capabilities = frozenset({Capability.FIND, Capability.EXPORT, Capability.DELETE,
                              Capability.RESTRICT, Capability.LOOKUP, Capability.RECTIFY,
                              Capability.OBJECT})
    identifier_types = frozenset({IdentifierType.EMAIL, IdentifierType.PHONE,
                                  IdentifierType.USER_ID})
    settings: ZendeskSettings

    def __init__(self, system: str, settings: ZendeskSettings) -> None:
        super().__init__(system, settings)
        self.poll_interval = settings.poll_seconds
        self.client = ZendeskClient(settings)
        self._locator = Locator(self.client, settings, system)
        self._eraser = Eraser(self.client, settings, lambda: self.state_dir)
        self._exporter = Exporter(self.client)
        self._lookup = Lookup(self.client, settings)
        self._restrictor = Restrictor(self.client, settings)
        self._rights = Rights(self.client, settings)

    def check(self) -> None:
        """The credentials work and the agent is an admin (``GET /users/me``): only admins
        may delete users and tickets permanently."""
        me = self.client.get("users/me", "check credentials").get("user") or {}
        if me.get("role") != "admin":
            raise AuthError("zendesk: the API agent is not an admin (permanent deletion of "
                            "users and tickets needs one)")

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        if not subjects:
            return iter(())
        return iter(self._locator.find(subjects))

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        return iter(self._exporter.export(findings) if findings else [])

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter(self._eraser.delete(findings) if findings else [])

    def poll(self, pending: Sequence[ItemOutcome]) -> Iterator[ItemOutcome]:
        return iter(self._eraser.poll(pending) if pending else [])

    def lookup(self, findings: Sequence[Finding]) -> Iterator[Finding]:
        return iter(self._lookup.lookup(findings) if findings else [])

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter(self._restrictor.restrict(findings) if findings else [])

    def rectify(self, findings: Sequence[Finding], corrections: Sequence[Correction]
                ) -> Iterator[ItemOutcome]:
        return iter(self._rights.rectify(findings, corrections) if findings else [])

    def object_to(self, findings: Sequence[Finding], scope: ObjectionScope
                  ) -> Iterator[ItemOutcome]:
        return iter(self._rights.object_to(findings, scope) if findings else [])

    def discover(self) -> str:
        from .discover import discover

        return discover(self.client, self.settings, self.system)

    def close(self) -> None:
        self.client.close()
