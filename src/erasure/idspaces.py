"""Id spaces: which systems share the numbering of an identifier type.

Email, phone, name and IP address mean the same person in every system (global types).
Every other identifier type (customer id, user id) belongs to an *id space*: "123" in the
helpdesk is not "123" in billing. Config declares which systems share a space; a system's
ids of a type no declared space covers stay in that system (its private space). How the
engine uses them (strength, expansion) is in :mod:`erasure.engine.expansion`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import UsageError
from .models import Identifier, IdentifierType

__all__ = ["GLOBAL_TYPES", "IdSpace", "IdSpaces", "Scoped", "private_space",
           "scoped_from_json", "scoped_to_json"]

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


def scoped_to_json(s: Scoped) -> list[Any]:
    return [s.ident.type.value, s.ident.value, s.space]


def scoped_from_json(d: list[Any]) -> Scoped:
    return Scoped(Identifier(IdentifierType(d[0]), d[1]), d[2])
