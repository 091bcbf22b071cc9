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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import UsageError
from ..models import Finding, Identifier, IdentifierType

__all__ = [
    "GLOBAL_TYPES",
    "Evidence",
    "IdSpace",
    "IdSpaces",
    "Scoped",
    "strong_fixpoint",
]

#: Identifier types that mean the same thing in every system.
GLOBAL_TYPES = frozenset({
    IdentifierType.EMAIL, IdentifierType.PHONE, IdentifierType.NAME, IdentifierType.IP,
})


class Scoped(NamedTuple):
    """An identifier and the id space it belongs to (``None`` for global types)."""

    ident: Identifier
    space: str | None

    @property
    def type(self) -> IdentifierType:
        return self.ident.type

    def __repr__(self) -> str:
        return f"Scoped({self.ident.type.value}@{self.space or '*'}, <redacted>)"


@dataclass(frozen=True)
class IdSpace:
    """A declared id space: the systems where values of one identifier type mean the same."""

    name: str
    type: IdentifierType
    systems: tuple[str, ...]
    default: bool = False


def private_space(system: str) -> str:
    """The space of a system's own ids that no declared space covers."""
    return f"system:{system}"


@dataclass(frozen=True)
class IdSpaces:
    """Lookup of id spaces by (type, system) and by name."""

    spaces: Mapping[str, IdSpace] = field(default_factory=dict)
    # asked for every identifier of every finding, twice: a few pairs, many calls
    _memo: dict[tuple[IdentifierType, str], str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def space_for(self, itype: IdentifierType, system: str) -> str | None:
        """The space a value of ``itype`` seen in ``system`` belongs to."""
        key = (itype, system)
        if key not in self._memo:
            self._memo[key] = self._space_for(itype, system)
        return self._memo[key]

    def _space_for(self, itype: IdentifierType, system: str) -> str | None:
        if itype in GLOBAL_TYPES:
            return None
        for s in self.spaces.values():
            if s.type is itype and system in s.systems:
                return s.name
        return private_space(system)

    def scope(self, ident: Identifier, system: str) -> Scoped:
        return Scoped(ident, self.space_for(ident.type, system))

    def searchable_in(self, scoped: Scoped, system: str) -> bool:
        """Whether ``scoped`` may be searched in ``system`` (and count as strong there)."""
        return scoped.space is None or scoped.space == self.space_for(scoped.type, system)

    def for_request(self, ident: Identifier, space: str | None) -> Scoped:
        """Scope an identifier given on a request: its named space, or the type's default."""
        if ident.type in GLOBAL_TYPES:
            if space:
                raise UsageError(f"{ident.type.value}: identifiers of this type have no id space")
            return Scoped(ident, None)
        candidates = [s for s in self.spaces.values() if s.type is ident.type]
        if space:
            chosen = self.spaces.get(space)
            if chosen is None:
                known = ", ".join(sorted(self.spaces)) or "none declared"
                raise UsageError(f"unknown id space {space!r} (known: {known})")
            if chosen.type is not ident.type:
                raise UsageError(
                    f"id space {space!r} holds {chosen.type.value}, not {ident.type.value}")
            return Scoped(ident, chosen.name)
        defaults = [s for s in candidates if s.default] or (
            candidates if len(candidates) == 1 else [])
        if not defaults:
            if not candidates:
                raise UsageError(
                    f"{ident.type.value}: no id space declares this type; add "
                    f'[id_spaces.NAME] with type = "{ident.type.value}" and its systems')
            raise UsageError(
                f"{ident.type.value}: several id spaces hold this type; name one "
                f"(--id-space) or mark one default")
        return Scoped(ident, defaults[0].name)

    def used(self, scoped: Iterable[Scoped], system: str) -> list[str]:
        """Names of the spaces among ``scoped`` that ``system`` searched (for receipts)."""
        return sorted({s.space for s in scoped
                       if s.space is not None and self.searchable_in(s, system)})


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


def scoped_to_json(s: Scoped) -> list[Any]:
    return [s.ident.type.value, s.ident.value, s.space]


def scoped_from_json(d: list[Any]) -> Scoped:
    return Scoped(Identifier(IdentifierType(d[0]), d[1]), d[2])


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
