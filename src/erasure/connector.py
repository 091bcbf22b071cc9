"""The connector contract: one abstract class every system plugin implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .dates import months_before
from .errors import CapabilityNotSupported
from .models import (
    Capability,
    Correction,
    Finding,
    IdentifierType,
    ItemOutcome,
    ObjectionScope,
    Record,
    Subject,
)

__all__ = [
    "RETENTION_SUBJECT", "UNMAPPED_RESIDUE", "CallContext", "Connector", "ConnectorSettings",
    "current_call", "in_call", "months_before", "settings_purpose", "validating_for",
]

#: ``Finding.subject`` of the findings of a retention sweep (:meth:`Connector.expired`):
#: they belong to nobody
RETENTION_SUBJECT = "retention"


#: ``Finding.kind`` of a verification finding outside the connector's mapping (see
#: :meth:`Connector.find`): data of the subject the mapping does not reach.
UNMAPPED_RESIDUE = "unmapped residue"


@dataclass(frozen=True)
class CallContext:
    """What the host says about the connector call under way (see :func:`current_call`).

    - ``action``: the action of the call (``"find"``, ``"delete"``...).
    - ``deadline``: a ``time.monotonic()`` value; a call that starts a long job should give
      up (TransientError) rather than run past it.
    - ``idempotency_keys``: per subject key (request id), a key that stays the same for that
      request, system and action across attempts, runs and processes. A connector that
      submits work which must not be submitted twice (a bulk job, an email to a processor)
      tags it with the key and, given the same key again, returns the existing job.
    - ``due``: per subject key, the request's due date (naive UTC), for connectors that
      tell someone by when to act (a processor's notice). Empty outside acting calls.
    """

    system: str
    action: str
    deadline: float
    idempotency_keys: Mapping[str, str] = field(default_factory=dict)
    due: Mapping[str, datetime] = field(default_factory=dict)

    def idempotency_key(self, subject: str) -> str:
        """The key of one subject's part of this call."""
        return self.idempotency_keys[subject]


_CURRENT: ContextVar[CallContext | None] = ContextVar("erasure_call", default=None)


def current_call() -> CallContext:
    """The context of the connector call under way; only valid inside a host's call."""
    ctx = _CURRENT.get()
    if ctx is None:
        raise RuntimeError("current_call() is only available while the host calls a connector")
    return ctx


@contextmanager
def in_call(context: CallContext) -> Iterator[None]:
    """Run a block as the host runs a connector call: :func:`current_call` returns
    ``context`` inside it. For harnesses that call connectors outside a host (the contract
    suite, a connector's own tests)."""
    token = _CURRENT.set(context)
    try:
        yield
    finally:
        _CURRENT.reset(token)


_PURPOSE: ContextVar[str] = ContextVar("erasure_settings_purpose", default="run")


def settings_purpose() -> str:
    """Why the host validates settings now: ``"run"`` (default: config check, requests) or
    ``"discover"`` (``erasure discover``: a system may map nothing yet). For validators."""
    return _PURPOSE.get()


@contextmanager
def validating_for(purpose: str) -> Iterator[None]:
    """Settings validated inside this block see :func:`settings_purpose` ``== purpose``."""
    token = _PURPOSE.set(purpose)
    try:
        yield
    finally:
        _PURPOSE.reset(token)


class ConnectorSettings(BaseModel):
    """Base for a connector's config section. Unknown keys are errors (typos must not pass).

    Declare secrets as ``pydantic.SecretStr``: the config loader resolves ``{ env = "NAME" }``
    references into them, and their repr never shows the value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class Connector(ABC):
    """A plugin type that can find, export, delete, restrict, rectify and stop processing of
    a subject's data in a system.

    Subclasses set the class variables and implement the methods of their capabilities.
    Every method is batch-first: it takes MANY subjects or findings at once so it can answer
    with one query (SQL ``IN``, one IMAP ``OR`` search, a composite API call); one subject is
    a batch of one.

    Rules:

    - Findings are references, never copies of data; ``Finding.system`` is ``self.system``.
    - ``delete``, ``anonymise``, ``restrict``, ``rectify`` and ``object_to`` are idempotent:
      a second call with the same findings changes nothing and yields
      ``ItemStatus.ALREADY_DONE``.
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
    #: Most findings (or subjects, for ``find``) one call may take; ``None``: no limit
    #: but the host's ``batch_size`` subjects. The host never splits one subject's findings
    #: across calls, so a call holding one subject may exceed it.
    max_batch: ClassVar[int | None] = None
    #: Seconds between polls of PENDING items (see :meth:`poll`); the host reads the
    #: instance's value, so a connector may set it from its settings.
    poll_interval: float = 60.0
    #: A folder of this system's own inside the host's state folder, set by the host
    #: before the first call (None when the connector is built outside a host). For what
    #: a connector must remember across runs and processes beyond the ledger (the notify
    #: connector's sent-log); never personal data.
    state_dir: Path | None = None

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
        """Yield a finding for every item that holds data of any of ``subjects``.

        During verification (``current_call().action == "verify"``) a connector may also
        yield findings of kind :data:`UNMAPPED_RESIDUE` for data of a subject it found
        outside its mapping (a scan beyond it). Their ``fields`` name where (e.g.
        ``"schema.table.column"``, never a value), ``matched`` the identifiers found; the
        host counts them as residue (outcome ``partial``) and lists ``fields`` on the
        receipt under ``unmapped_residue``. They are never acted on.
        """

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

    def rectify(self, findings: Sequence[Finding], corrections: Sequence[Correction]
                ) -> Iterator[ItemOutcome]:
        """Correct the subjects' data in the items (GDPR Art. 16; ``Capability.RECTIFY``).

        ``corrections`` holds every correction of every subject in the call (match them to
        findings by ``Correction.subject == Finding.subject``). For each finding, every
        field the connector maps to a correction's type (sql: the identifier columns of
        that type; an ``address`` mapping for the postal address) that holds one of
        ``Correction.old`` (compare normalised: :meth:`Correction.matches`) gets
        ``Correction.new``; nothing else changes (never another field, never another row).

        Yield one outcome per finding: DONE when a field changed, ALREADY_DONE when every
        such field already held the new value (idempotent: a repeat changes nothing). An
        item with no such field of its own (an order, a task on the contact) is
        ALREADY_DONE, or DONE when the call changed the item it reaches the person through.
        Raise ``CapabilityNotSupported`` naming the type (never a value) when the system
        maps no field at all for a correction's type (the host reports the system
        ``not_covered``). Unique constraints and the like: a FAILED outcome or
        ``PermanentError`` without values in the message.

        The host verifies by finding the items again: each item that held an old value is
        found by the new one and by no old one (an address: read back with ``export``).
        """
        raise CapabilityNotSupported(f"{self.name} cannot rectify")

    def object_to(self, findings: Sequence[Finding], scope: ObjectionScope
                  ) -> Iterator[ItemOutcome]:
        """Stop processing the items for ``scope`` (GDPR Art. 21; ``Capability.OBJECT``).

        Set what the system reads before that processing: an opt-out flag, a
        do-not-market list entry, a profiling exclusion. Never delete anything and never
        change fields other than those. Idempotent: an item already opted out yields
        ALREADY_DONE. One call carries one scope. A system that has nothing to stop
        ``scope`` with (no opt-out configured for profiling) raises
        ``CapabilityNotSupported`` naming the scope: the host reports it ``not_covered``
        with that reason.
        """
        raise CapabilityNotSupported(f"{self.name} cannot record an objection")

    def poll(self, pending: Sequence[ItemOutcome]) -> Iterator[ItemOutcome]:
        """Outcomes of items an earlier call answered ``ItemStatus.PENDING``.

        ``pending`` holds those outcomes as the ledger kept them (finding and ``handle``).
        Yield one outcome per item: DONE/FAILED when the system has finished, PENDING (same
        or new handle) while it has not. Called when due, without holding any lease.
        """
        raise CapabilityNotSupported(f"{self.name} cannot poll")

    def remind(self, waiting: Sequence[ItemOutcome]) -> Iterator[ItemOutcome]:
        """Remind whoever was told of items still AWAITING_CONFIRMATION (``NOTIFY``).

        Called when a notice has waited ``confirmation_reminder_days`` without an answer,
        and again each such period. ``waiting`` holds the outcomes the ledger kept (finding
        and ``handle``). Yield one outcome per item: AWAITING_CONFIRMATION (reminded; the
        same or a new handle). Each reminder has its own idempotency key
        (``current_call()``): a reminder retried after a crash is not sent twice.
        """
        raise CapabilityNotSupported(f"{self.name} cannot remind")

    def lookup(self, findings: Sequence[Finding]) -> Iterator[Finding]:
        """Yield the findings whose items still exist, read by id (``Capability.LOOKUP``).

        Verification uses it besides a fresh ``find``: search indexes lag behind writes, a
        read by id does not. It may also yield findings of kind :data:`UNMAPPED_RESIDUE`
        (``fields``: the places) for data the deleted items leave behind elsewhere (rows
        that still hold a deleted row's key); the receipt names those places.
        """
        raise CapabilityNotSupported(f"{self.name} cannot look items up")

    def retention_cutoff(self, now: datetime) -> datetime | None:
        """The date before which the system's items are past retention (``RETENTION``).

        The connector owns the period (its settings: "mail is kept 12 months"); ``None``
        means no retention is configured, and ``erasure sweep`` leaves the system alone.
        """
        raise CapabilityNotSupported(f"{self.name} has no retention")

    def expired(self, cutoff: datetime) -> Iterator[Finding]:
        """Yield a finding for every item dated before ``cutoff`` (``RETENTION``).

        Findings of a sweep belong to nobody: ``subject`` is ``"retention"`` and ``matched``
        is empty. ``kind`` names the group the sweep receipt counts them by (a folder, a
        table): never personal data. ``erasure sweep`` hands them to :meth:`delete`.
        """
        raise CapabilityNotSupported(f"{self.name} has no retention")

    def oldest(self) -> datetime | None:
        """When the oldest item under retention is dated (``RETENTION``); None: no item.

        ``erasure status`` shows its age, as recorded by the last sweep.
        """
        raise CapabilityNotSupported(f"{self.name} has no retention")

    def discover(self) -> str:
        """Propose a mapping for this system as TOML text for a person to review.

        Optional (``erasure discover SYSTEM``). Must never print or log sampled values.
        """
        raise CapabilityNotSupported(f"{self.name} cannot discover a mapping")

    def advice(self) -> list[str]:
        """Notes for the operator that are not failures, one line each (``erasure systems
        check`` prints them): an index that would serve the connector's lookups, say. No
        personal data. Optional; the default has none."""
        return []

    def deep_check(self, subjects: Sequence[Subject]) -> list[str]:
        """Search beyond the mapping (``erasure systems check --deep``): one line per place
        outside it that holds a strong identifier of ``subjects`` (or, with no subjects, of
        anyone the mapping knows). Lines name places and counts, never values. Optional.
        """
        raise CapabilityNotSupported(f"{self.name} cannot search beyond its mapping")

    def receipt_facts(self) -> Mapping[str, Any]:
        """Facts about the system the receipts of its requests state, JSON-safe and free of
        personal data (the salesforce connector: the org's API usage from Sforce-Limit-Info).
        Read when a receipt is written; empty by default."""
        return {}

    def close(self) -> None:
        """Release connections. Called once when the host is done with the system."""

    @classmethod
    def supports(cls, capability: Capability) -> bool:
        """Whether the connector declares ``capability``."""
        return capability in cls.capabilities
