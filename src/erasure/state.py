"""Per-request working state: the subject's identifiers and each system's findings.

Held encrypted in the ledger while a request is open and purged when it finishes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .models import Finding, Identifier, IdentifierType

__all__ = ["KnownIdentifiers", "TaskState", "finding_from_json", "finding_to_json"]


@dataclass
class KnownIdentifiers:
    """A subject's identifiers with their provenance strength.

    Strong: of a strong type AND given in the request or found on an item that was itself
    matched through a strong identifier. Only strong identifiers let the host act on an
    item automatically; the rest only find items for review.
    """

    strength: dict[Identifier, bool] = field(default_factory=dict)

    def add(self, ident: Identifier, strong: bool) -> bool:
        """Add or upgrade; True when something changed."""
        old = self.strength.get(ident)
        if old is None or (strong and not old):
            self.strength[ident] = strong
            return True
        return False

    def strong(self) -> tuple[Identifier, ...]:
        return tuple(i for i, s in self.strength.items() if s)

    def all(self) -> tuple[Identifier, ...]:
        return tuple(self.strength)

    def is_strong(self, ident: Identifier) -> bool:
        return self.strength.get(ident, False)

    def to_json(self) -> list[list[Any]]:
        return [[i.type.value, i.value, s] for i, s in self.strength.items()]

    @classmethod
    def from_json(cls, data: list[list[Any]]) -> KnownIdentifiers:
        return cls({Identifier(IdentifierType(t), v): bool(s) for t, v, s in data})


def finding_to_json(f: Finding) -> dict[str, Any]:
    return {
        "ref": f.ref,
        "kind": f.kind,
        "matched": [[m.type.value, m.value] for m in f.matched],
        "fields": list(f.fields),
    }


def finding_from_json(system: str, subject: str, d: dict[str, Any]) -> Finding:
    return Finding(
        system=system,
        subject=subject,
        ref=d["ref"],
        kind=d["kind"],
        matched=tuple(Identifier(IdentifierType(t), v) for t, v in d["matched"]),
        fields=tuple(d.get("fields", ())),
    )


@dataclass
class TaskState:
    """One request's state in one system (what the ledger row's ``state`` decrypts to)."""

    findings: dict[str, Finding] = field(default_factory=dict)
    actionable: set[str] = field(default_factory=set)
    outcomes: dict[str, str] = field(default_factory=dict)  # ref -> ItemStatus value
    residue: list[str] = field(default_factory=list)
    package: str | None = None

    def merge(self, f: Finding) -> None:
        old = self.findings.get(f.ref)
        if old is None:
            self.findings[f.ref] = f
        else:
            matched = tuple(dict.fromkeys(old.matched + f.matched))
            fields = tuple(dict.fromkeys(old.fields + f.fields))
            self.findings[f.ref] = Finding(
                f.system, f.subject, f.ref, f.kind, matched, fields, f.related
            )

    def to_bytes(self) -> bytes:
        return json.dumps({
            "findings": [finding_to_json(f) for f in self.findings.values()],
            "actionable": sorted(self.actionable),
            "outcomes": self.outcomes,
            "residue": self.residue,
        }, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, system: str, subject: str, data: bytes | None) -> TaskState:
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
        return st

