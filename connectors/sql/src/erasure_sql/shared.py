"""Rows other people still use: an address a subject's customer row points at may also be
the shipping address of someone else's order. Reached through a reverse link, such a row is
kept (and reported) or anonymised, never deleted from under the other rows.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from erasure import ItemOutcome, ItemStatus

from .grouping import Group
from .mapping import Mapping
from .queries import in_values, tuple_in
from .values import Key, chunks

__all__ = ["export_only_outcomes", "split_shared", "still_used"]


def still_used(conn: sa.Connection, m: Mapping, grouped: dict[str, Group], dialect: str,
               limit: int, deleting: bool) -> dict[str, dict[Key, str]]:
    """Per table, the keys of rows to be erased that rows outside this erasure still point
    at (through a reverse link), each with the table of those rows. Counts no values out."""
    held: dict[str, dict[Key, str]] = {}
    for e in m.edges:
        group = grouped.get(e.child)
        if not e.reverse or e.export_only or group is None:
            continue
        child, parent = m.tables[e.child], m.tables[e.parent]
        positions = [child.pk.index(c) for c in e.child_cols]
        wanted: dict[tuple[Any, ...], Key] = {}
        for pk in group.keys():
            wanted[tuple(pk[i] for i in positions)] = pk
        # Rows of the parent that go in this very call do not count as users.
        going: set[Key] = set()
        if deleting and parent.action == "delete" and e.parent in grouped:
            going = set(grouped[e.parent].keys())
        cols = [parent.col(c) for c in e.parent_cols]
        pk_cols = parent.pk_cols()
        for part in chunks(list(wanted), max(1, limit // max(1, len(cols)))):
            if len(cols) == 1:
                where = in_values(dialect, cols[0], [v[0] for v in part], cols[0].type)
            else:
                where = tuple_in(cols, part)
            for row in conn.execute(sa.select(*cols, *pk_cols).where(where)):
                link, pk = tuple(row[:len(cols)]), tuple(row[len(cols):])
                if pk not in going and link in wanted:
                    held.setdefault(e.child, {})[wanted[link]] = e.parent
    return held


def split_shared(group: Group, held: dict[Key, str]) -> tuple[Group, Group]:
    """(rows free to erase, rows still used elsewhere)."""
    free, kept = Group(), Group()
    for pk, f in zip(group.pks, group.findings, strict=True):
        target = kept if pk in held else free
        target.pks.append(pk)
        target.findings.append(f)
    return free, kept


def kept_outcomes(group: Group, held: dict[Key, str]) -> list[ItemOutcome]:
    """RETAINED for rows still used by other rows, naming the table that uses them."""
    return [ItemOutcome(f, ItemStatus.RETAINED,
                        error=f"shared: still used by other rows of {held[pk]}")
            for pk, f in zip(group.pks, group.findings, strict=True)]


def export_only_outcomes(group: Group, table: str) -> list[ItemOutcome]:
    """RETAINED for rows reached only through ``export_only`` links."""
    return [ItemOutcome(f, ItemStatus.RETAINED,
                        error=f"table {table} is reached through export_only links: not erased")
            for f in group.findings]
