"""Match entries: which subjects matched a row, through which identifiers and columns.

find builds one entry per distinct way of matching and shares it between the rows matched
that way (thousands of rows, few distinct entries); an entry and the dicts in it are never
changed in place: a merge makes a new one.
"""

from __future__ import annotations

from erasure import Identifier

__all__ = ["Entry", "Hit", "entry_of", "merged"]

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
