"""Rows other people still use: an address a subject's customer row points at may also be
the shipping address of someone else's order, and a card may have paid for someone else's
order. Reached through a reverse link, or used through a link that is not the user's owner
path, such a row is kept (and reported) or anonymised, never deleted from under the other
rows.
"""

from __future__ import annotations

import sqlalchemy as sa

from erasure import ItemOutcome, ItemStatus

from .grouping import Group
from .mapping import Mapping
from .queries import in_values, tuple_in
from .values import Key, chunks

__all__ = ["export_only_outcomes", "split_shared", "still_used"]


def _references(m: Mapping, table: str) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """Every known way rows point at ``table``: (table, its columns, ``table``'s columns),
    from the reverse links of the mapping and the foreign keys of every reflected table."""
    out = []
    for e in m.edges:
        if e.reverse and not e.export_only and e.child == table:
            out.append((e.parent, e.parent_cols, e.child_cols))
        elif not e.owner and e.parent == table:  # an order paid with this card
            out.append((e.child, e.child_cols, e.parent_cols))
    for name, t in m.all_tables.items():
        for fk in t.foreign_key_constraints:
            if fk.referred_table.name == table:
                out.append((name, tuple(el.parent.name for el in fk.elements),
                            tuple(el.column.name for el in fk.elements)))
    return list(dict.fromkeys(out))


def still_used(conn: sa.Connection, m: Mapping, grouped: dict[str, Group], dialect: str,
               limit: int, deleting: bool) -> dict[str, dict[Key, str]]:
    """Per table reached through a reverse link, the keys of rows to be erased that rows
    outside this erasure still point at, each with the table of those rows. Reads only
    keys; no value leaves the connector."""
    held: dict[str, dict[Key, str]] = {}
    reversed_into = {e.child for e in m.edges if e.reverse and not e.export_only}
    # Rows other people's rows reach through a link that is not their owner's: a card
    # someone else's order was paid with.
    reversed_into |= {e.parent for e in m.edges if not e.owner}
    for name in sorted(reversed_into & grouped.keys()):
        tm = m.tables[name]
        for source, cols_from, cols_to in _references(m, name):
            if not set(cols_to) <= set(tm.pk):
                continue  # only references to the key are known here
            positions = [tm.pk.index(c) for c in cols_to]
            wanted = {tuple(pk[i] for i in positions): pk for pk in grouped[name].keys()}
            table = m.all_tables[source]
            src = m.tables.get(source)
            # Rows of the referencing table that go in this very call do not count.
            going: set[Key] = set()
            if src is not None and source in grouped and (
                    not deleting or src.action == "delete"):
                # Rows of this erasure that go, or (anonymising) that are the subject's own:
                # a home address only the subject's rows use is the subject's, not shared.
                going = set(grouped[source].keys())
            cols = [table.c[c] for c in cols_from]
            pk_cols = list(table.primary_key.columns)
            for part in chunks(list(wanted), max(1, limit // max(1, len(cols)))):
                if len(cols) == 1:
                    where = in_values(dialect, cols[0], [v[0] for v in part], cols[0].type)
                else:
                    where = tuple_in(cols, part)
                for row in conn.execute(sa.select(*cols, *pk_cols).where(where)):
                    link, pk = tuple(row[:len(cols)]), tuple(row[len(cols):])
                    if (not pk_cols or pk not in going) and link in wanted:
                        held.setdefault(name, {})[wanted[link]] = source
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
