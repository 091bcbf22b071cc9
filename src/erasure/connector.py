"""The connector contract: one abstract class every system plugin implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from .errors import CapabilityNotSupported
from .models import Capability, Finding, IdentifierType, ItemOutcome, Record, Subject

__all__ = ["Connector", "ConnectorSettings"]


class ConnectorSettings(BaseModel):
    """Base for a connector's config section. Unknown keys are errors (typos must not pass).

    Declare secrets as ``pydantic.SecretStr``: the config loader resolves ``{ env = "NAME" }``
    references into them, and their repr never shows the value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class Connector(ABC):
    """A plugin type that can find, export, delete and restrict a subject's data in a system.

    Subclasses set the class variables and implement the methods of their capabilities.
    Every method is batch-first: it takes MANY subjects or findings at once so it can answer
    with one query (SQL ``IN``, one IMAP ``OR`` search, a composite API call); one subject is
    a batch of one.

    Rules:

    - Findings are references, never copies of data; ``Finding.system`` is ``self.system``.
    - ``delete``, ``anonymise`` and ``restrict`` are idempotent: a second call with the same
      findings changes nothing and yields ``ItemStatus.ALREADY_DONE``.
    - Classify every failure as an :mod:`erasure.errors` type. Never sleep or retry: the host
      retries ``TransientError`` (whole call) and transient ``ItemOutcome`` (those items).
    - Never put identifiers or record values in log lines or exception messages.
    - Import vendor SDKs lazily (inside methods or ``__init__``) so a missing optional
      dependency fails only the systems that need it.
    """

    #: Connector (plugin type) name, as written in config: ``connector = "sql"``.
    name: ClassVar[str]
    #: Connector version, recorded on every receipt.
    version: ClassVar[str] = "0"
    #: Pydantic model of the config section; validated before the connector is built.
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    #: What this connector can do.
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.FIND})
    #: Identifier types ``find`` can search by. ``None`` means all.
    identifier_types: ClassVar[frozenset[IdentifierType] | None] = None
    #: Most findings (or subjects, for ``find``) one call may take; ``None``: the host's
    #: ``batch_size``. The host never splits one subject's findings across calls, so a call
    #: holding one subject may exceed it.
    max_batch: ClassVar[int | None] = None

    def __init__(self, system: str, settings: ConnectorSettings) -> None:
        self.system = system
        self.settings = settings

    def __repr__(self) -> str:
        # Settings repr masks SecretStr fields; never print raw config values here.
        return f"<{type(self).__name__} system={self.system!r}>"

    def check(self) -> None:
        """Check reachability and permissions (e.g. that hard delete is allowed).

        Raise ``AuthError`` or ``PermanentError`` with a message naming the problem.
        """

    @abstractmethod
    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        """Yield a finding for every item that holds data of any of ``subjects``."""

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        """Yield one JSON-safe record per finding that still exists."""
        raise CapabilityNotSupported(f"{self.name} cannot export")

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        """Erase the items for good (no recycle bin, no old versions); one outcome per finding."""
        raise CapabilityNotSupported(f"{self.name} cannot delete")

    def anonymise(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        """Remove the identifying values but keep the item (records the law says to keep)."""
        raise CapabilityNotSupported(f"{self.name} cannot anonymise")

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        """Mark the items so they are no longer processed (GDPR Art. 18)."""
        raise CapabilityNotSupported(f"{self.name} cannot restrict")

    def discover(self) -> str:
        """Propose a mapping for this system as TOML text for a person to review.

        Optional (``erasure discover SYSTEM``). Must never print or log sampled values.
        """
        raise CapabilityNotSupported(f"{self.name} cannot discover a mapping")

    def close(self) -> None:
        """Release connections. Called once when the host is done with the system."""

    @classmethod
    def supports(cls, capability: Capability) -> bool:
        """Whether the connector declares ``capability``."""
        return capability in cls.capabilities
