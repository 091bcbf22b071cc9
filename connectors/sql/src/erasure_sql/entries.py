"""Match entries: which subjects matched a row, through which identifiers and columns.

find builds one entry per distinct way of matching and shares it between the rows matched
that way (thousands of rows, few distinct entries); an entry and the dicts in it are never
changed in place: a merge makes a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from erasure import Identifier

from .values import Key

__all__ = ["Entry", "Hit", "Link", "entry_of", "merged", "record_direct"]

Hit = tuple[dict[Identifier, None], dict[str, None]]  # matched identifiers, matched fields
Entry = dict[str, Hit]  # subject key -> its match on one row


def entry_of(owners: list[tuple[str, Identifier]], fields: dict[str, None]) -> Entry:
    """The entry of rows matched by ``owners`` (subject, identifier) in the ``fields``."""
    entry: Entry = {}
    for skey, ident in owners:
        cur = entry.get(skey)
        entry[skey] = ({ident: None}, fields) if cur is None else ({**cur[0], ident: None}, fields)
    return entry


def merged(entry: Entry, add: Entry) -> tuple[Entry, bool]:
    """``entry`` with the matches of ``add`` merged in, and whether identifiers grew.

    Returns ``entry`` itself when nothing changes, else a new dict: entries and the dicts in
    them are shared between rows and never changed in place.
    """
    out: Entry | None = None
    grew = False
    for skey, (idents, fields) in add.items():
        cur = entry.get(skey)
        if cur is None:
            hit, grew = (idents, fields), True
        else:
            matched, have = cur
            more = matched is not idents and not idents.keys() <= matched.keys()
            new_m = {**matched, **idents} if more else matched
            new_f = have if have is fields or fields.keys() <= have.keys() else {**have, **fields}
            if new_m is matched and new_f is have:
                continue
            hit, grew = (new_m, new_f), grew or more
        if out is None:
            out = dict(entry)
        out[skey] = hit
    return (entry if out is None else out), grew


def record_direct(
    matched: list[tuple[Key, Any]], wanted: dict[Any, list[tuple[str, Identifier]]],
    fields: dict[str, None], table_hits: dict[Key, Entry],
) -> None:
    """Give the directly matched rows their entries (shared by rows matched the same way)."""
    shared: dict[Any, Entry] = {}
    for pk, value in matched:
        add = shared.get(value)
        if add is None:
            add = shared[value] = entry_of(wanted[value], fields)
        entry = table_hits.get(pk)
        table_hits[pk] = add if entry is None else merged(entry, add)[0]


class Link:
    """Parent rows by link key; which subjects each key stands for is built on first use."""

    def __init__(self, by_key: dict[Any, list[Key]], parent_hits: dict[Key, Entry],
                 finish: Callable[[], None]) -> None:
        self._by_key, self._parent_hits, self._finish = by_key, parent_hits, finish
        self._owners: dict[Any, dict[str, dict[Identifier, None]]] | None = None

    def keys(self) -> list[Any]:
        return list(self._by_key)

    def owners(self) -> dict[Any, dict[str, dict[Identifier, None]]]:
        """Link key -> {subject: identifiers it matched through}."""
        if self._owners is None:
            self._finish()
            owners: dict[Any, dict[str, dict[Identifier, None]]] = {}
            for keyv, pks in self._by_key.items():
                target = owners[keyv] = {}
                for pk in pks:
                    for skey, (matched, _f) in self._parent_hits[pk].items():
                        have = target.get(skey)  # dicts are shared: merge into new ones
                        if have is None:
                            target[skey] = matched
                        elif have is not matched:
                            target[skey] = {**have, **matched}
            self._owners = owners
        return self._owners
