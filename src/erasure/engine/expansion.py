"""Identifiers, their id spaces and their strength: the fixpoint behind every plan and run.

Email, phone, name and IP address mean the same person in every system (global types).
Every other identifier type (customer id, user id) belongs to an *id space*: "123" in the
helpdesk is not "123" in billing. Config declares which systems share a space::

    [id_spaces.customer]
    type = "customer_id"
    systems = ["billing-db", "crm"]

A scoped identifier is searched, and counts as strong, only in the systems of its space. A
system's ids of a type no declared space covers stay in that system (its private space).

Strength is computed from evidence, never from the order in which systems answered:
an identifier is strong when its type is in ``strong_identifiers`` and it was given in the
request, or it was seen on an item that was matched through a strong identifier. The host
acts only on items matched through a strong identifier.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import UsageError
from ..idspaces import (
    GLOBAL_TYPES,
    IdSpace,
    IdSpaces,
    Scoped,
    private_space,
    scoped_from_json,
    scoped_to_json,
)
from ..models import Finding, Identifier, IdentifierType

# The id spaces live in erasure.idspaces (config and state use them; they must not import
# the engine); re-exported here, where the engine's callers have always found them.
__all__ = [
    "GLOBAL_TYPES",
    "Evidence",
    "IdSpace",
    "IdSpaces",
    "Scoped",
    "finding_evidence",
    "private_space",
    "scoped_from_json",
    "scoped_to_json",
    "strong_fixpoint",
]

@dataclass
class Evidence:
    """What find learnt about one item: the identifiers it matched and those seen on it."""

    kind: str
    matched: set[Scoped] = field(default_factory=set)
    related: set[Scoped] = field(default_factory=set)


def strong_fixpoint(
    given: Iterable[Scoped], evidence: Iterable[Evidence],
    strong_types: frozenset[IdentifierType] | set[IdentifierType],
) -> set[Scoped]:
    """The strong identifiers: given ones of a strong type, plus, until nothing changes,
    identifiers of a strong type seen on an item matched through a strong one.

    A function of the sets alone, so the result never depends on answer order.
    """
    strong = {g for g in given if g.type in strong_types}
    items = [e for e in evidence if e.related]
    changed = True
    while changed:
        changed = False
        rest = []
        for e in items:
            if e.matched & strong:
                new = {r for r in e.related if r.type in strong_types} - strong
                if new:
                    strong |= new
                    changed = True
            else:
                rest.append(e)
        items = rest
    return strong


def finding_evidence(f: Finding, system: str, spaces: IdSpaces,
                     allowed: set[Scoped]) -> tuple[set[Scoped], set[Scoped]]:
    """(matched, related) of a finding, scoped to ``system``; matched identifiers the
    subject was not searched with are dropped (a connector bug must not widen a match)."""
    matched = {sc for m in f.matched if (sc := spaces.scope(m, system)) in allowed}
    related: set[Scoped] = set()
    for rel in f.related:
        scoped = spaces.scope(rel, system)
        if scoped not in allowed:  # one it was searched with is normalised already
            try:
                scoped = spaces.scope(Identifier.parse(rel.type, rel.value), system)
            except UsageError:
                continue
        related.add(scoped)
    return matched, related
