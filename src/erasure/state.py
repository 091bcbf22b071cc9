"""Per-request working state: the subject's identifiers and each system's findings.

Held encrypted in the ledger while a request is open and purged when it finishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .idspaces import Scoped, scoped_from_json, scoped_to_json
from .models import Finding, Identifier, IdentifierType

__all__ = [
    "KnownIdentifiers", "RequestIntent", "TaskData", "finding_from_json", "finding_to_json",
    "request_blob", "read_request_blob",
]


@dataclass
class KnownIdentifiers:
    """A subject's identifiers, each scoped to its id space, and which of them are strong.

    ``given`` came with the request. The rest were seen on items find returned. Strength is
    recomputed by :func:`erasure.engine.expansion.strong_fixpoint` after every find, so it never
    depends on the order systems answered in. Only strong identifiers let the host act on
    an item automatically; the rest only find items for review.
    """

    given: set[Scoped] = field(default_factory=set)
    strength: dict[Scoped, bool] = field(default_factory=dict)
    #: False when find stopped at the round limit with identifiers left unsearched.
    complete: bool = True

    @classmethod
    def from_request(cls, given: Iterable[Scoped],
                     strong_types: Iterable[IdentifierType]) -> KnownIdentifiers:
        types = set(strong_types)
        known = cls(set(given))
        known.strength = {g: g.type in types for g in known.given}
        return known

    def add(self, scoped: Scoped) -> bool:
        """Add an identifier (weak until the fixpoint says otherwise); True when new."""
        if scoped in self.strength:
            return False
        self.strength[scoped] = False
        return True

    def set_strong(self, strong: set[Scoped]) -> None:
        self.strength = {s: s in strong for s in self.strength}

    def strong(self) -> tuple[Scoped, ...]:
        return tuple(i for i, s in self.strength.items() if s)

    def all(self) -> tuple[Scoped, ...]:
        return tuple(self.strength)

    def is_strong(self, scoped: Scoped) -> bool:
        return self.strength.get(scoped, False)

    def to_json(self) -> dict[str, Any]:
        return {
            "ids": [[*scoped_to_json(i), s, i in self.given] for i, s in self.strength.items()],
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KnownIdentifiers:
        known = cls(complete=bool(data.get("complete", True)))
        for *ident, strong, given in data["ids"]:
            scoped = scoped_from_json(ident)
            known.strength[scoped] = bool(strong)
            if given:
                known.given.add(scoped)
        return known


@dataclass(frozen=True)
class RequestIntent:
    """What a request asks beyond its type: a rectification's corrections (normalised
    ``(type, value)`` pairs: personal data) and an objection's scope. Held encrypted with
    the request's identifiers and purged with them when the request ends."""

    corrections: tuple[tuple[str, str], ...] = ()
    scope: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.corrections:
            out["corrections"] = [list(c) for c in self.corrections]
        if self.scope is not None:
            out["scope"] = self.scope
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestIntent:
        return cls(tuple((t, v) for t, v in data.get("corrections", ())), data.get("scope"))


def request_blob(known: KnownIdentifiers, intent: RequestIntent) -> bytes:
    """What a request row's ``identifiers`` column holds (before encryption)."""
    data = known.to_json()
    if intent_json := intent.to_json():
        data["intent"] = intent_json
    return json.dumps(data).encode()


def read_request_blob(blob: bytes | None) -> tuple[KnownIdentifiers, RequestIntent]:
    """The identifiers and intent of a decrypted ``identifiers`` column (None: purged)."""
    if blob is None:
        return KnownIdentifiers(), RequestIntent()
    data = json.loads(blob)
    return KnownIdentifiers.from_json(data), RequestIntent.from_json(data.get("intent", {}))


def finding_to_json(f: Finding) -> dict[str, Any]:
    return {
        "ref": f.ref,
        "kind": f.kind,
        "matched": [[m.type.value, m.value] for m in f.matched],
        "fields": list(f.fields),
        # what else the item holds: strength is decided again from all findings when a
        # later run's answers come in
        "related": [[r.type.value, r.value] for r in f.related],
    }


def finding_from_json(system: str, subject: str, d: dict[str, Any]) -> Finding:
    return Finding(
        system=system,
        subject=subject,
        ref=d["ref"],
        kind=d["kind"],
        matched=tuple(Identifier(IdentifierType(t), v) for t, v in d["matched"]),
        fields=tuple(d.get("fields", ())),
        related=tuple(Identifier(IdentifierType(t), v) for t, v in d.get("related", ())),
    )


@dataclass
class TaskData:
    """One request's state in one system (what the ledger row's ``state`` decrypts to)."""

    findings: dict[str, Finding] = field(default_factory=dict)
    actionable: set[str] = field(default_factory=set)
    outcomes: dict[str, str] = field(default_factory=dict)  # ref -> ItemStatus value
    residue: list[str] = field(default_factory=list)
    #: exported records as (kind, data): the access package is built from these, so a
    #: resumed run writes the same package as an uninterrupted one.
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: ref -> handle of an item the system is still working on (ItemStatus.PENDING) or
    #: that a processor was told about and must confirm (AWAITING_CONFIRMATION)
    handles: dict[str, str] = field(default_factory=dict)
    #: identifiers this system was searched with (a later search asks only new ones)
    searched: list[Scoped] = field(default_factory=list)
    #: refs of items kept by a hold that may be lifted (ItemOutcome.held): acted on again
    #: while the request is open
    held: list[str] = field(default_factory=list)

    def merge(self, f: Finding) -> None:
        old = self.findings.get(f.ref)
        if old is None:
            self.findings[f.ref] = f
        else:
            matched = tuple(dict.fromkeys(old.matched + f.matched))
            fields = tuple(dict.fromkeys(old.fields + f.fields))
            related = tuple(dict.fromkeys(old.related + f.related))
            self.findings[f.ref] = Finding(
                f.system, f.subject, f.ref, f.kind, matched, fields, related
            )

    def to_bytes(self) -> bytes:
        return json.dumps({
            "findings": [finding_to_json(f) for f in self.findings.values()],
            "actionable": sorted(self.actionable),
            "outcomes": self.outcomes,
            "residue": self.residue,
            "records": self.records,
            "handles": self.handles,
            "searched": [scoped_to_json(i) for i in self.searched],
            "held": self.held,
        }, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, system: str, subject: str, data: bytes | None) -> TaskData:
        if not data:
            return cls()
        d = json.loads(data)
        st = cls()
        for fd in d["findings"]:
            f = finding_from_json(system, subject, fd)
            st.findings[f.ref] = f
        st.actionable = set(d["actionable"])
        st.outcomes = dict(d["outcomes"])
        st.residue = list(d.get("residue", []))
        st.records = [(k, data) for k, data in d.get("records", [])]
        st.handles = dict(d.get("handles", {}))
        st.searched = [scoped_from_json(i) for i in d.get("searched", [])]
        st.held = list(d.get("held", []))
        return st

