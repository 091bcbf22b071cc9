"""Verification that sees keys: after an erasure, the rows it deleted are read back by key,
and every column that links to them (declared foreign keys, the mapping's links, and
columns discover would link: named after the table's key, of the same type) is searched for
the keys it removed. A login or an order item that still holds an erased customer's or
order's key is the subject's data left behind, mapped or not: *unmapped residue*, named
``schema.table.column`` (never by value).

One statement per table read back and per table holding link columns, per call; keys are
bound parameters, names come from the reflected schema. Only the system's own schema is
searched by key: the same number is another person in a backup schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from erasure import Finding, Identifier, IdentifierType

from .grouping import Group
from .links import named_after, same_kind, stems
from .mapping import Mapping
from .queries import in_values, pk_filter
from .values import Key, chunks

__all__ = [
    "KeyHolder", "key_holders", "key_residue", "residue_finding", "still_there", "unmapped_links",
]

RESIDUE_KIND = "unmapped residue"  # erasure.connector.UNMAPPED_RESIDUE
_STRONG = (IdentifierType.EMAIL, IdentifierType.PHONE)


@dataclass(frozen=True)
class KeyHolder:
    """``table.column`` holds keys of rows of the mapped table ``target``."""

    table: sa.Table
    column: str
    target: str
    how: str  # "foreign key", "link" (the mapping's), "name" (named after the key)


def key_holders(m: Mapping) -> dict[str, list[KeyHolder]]:
    """Columns holding keys of each mapped table with a one-column key, by the table
    holding them (tables of the system's schema, mapped or not, keyless ones too)."""
    out: dict[str, list[KeyHolder]] = {}
    for target, tm in m.tables.items():
        if len(tm.pk) != 1:
            continue
        key = tm.col(tm.pk[0])
        mapped = {(e.child, e.child_cols[0]) for e in m.edges
                  if e.parent == target and not e.reverse and e.parent_cols == tm.pk}
        # Rows kept on purpose, holding the key: followed for access only.
        kept = {(e.child, e.child_cols[0]) for e in m.edges
                if e.parent == target and e.export_only and len(e.child_cols) == 1}
        names = stems(target)
        for table in m.all_tables.values():
            declared = {el.parent.name for fk in table.foreign_key_constraints
                        for el in fk.elements
                        if fk.referred_table.name == target and el.column.name == key.name}
            for col in table.columns:
                if (table.name == target and col.name == key.name) or (
                        (table.name, col.name) in kept):
                    continue
                how = ("foreign key" if col.name in declared
                       else "link" if (table.name, col.name) in mapped
                       else "name" if (table.name != target and named_after(col.name, names)
                                       and same_kind(col, key)) else None)
                if how is not None:
                    out.setdefault(table.name, []).append(
                        KeyHolder(table, col.name, target, how))
    return out


def unmapped_links(m: Mapping, holders: dict[str, list[KeyHolder]], schema: str) -> list[str]:
    """Columns that hold keys of a mapped table (by a foreign key, or by name and type)
    without a link of the mapping: an erasure would leave their rows behind holding the
    person's keys (``systems check --deep`` names them)."""
    linked = {(e.child, c) for e in m.edges if not e.reverse for c in e.child_cols}
    linked |= {(e.parent, c) for e in m.edges if e.reverse for c in e.parent_cols}
    linked |= {(e.child, c) for edges in m.shadowed.values() for e in edges
               for c in e.child_cols}
    out = []
    for tname, cols in sorted(holders.items()):
        keyless = not m.all_tables[tname].primary_key.columns
        tm = m.tables.get(tname)
        if tm is not None and any(t in _STRONG for t, _c in tm.identifiers):
            # Rows with a person of their own (a service request an employee handled):
            # left unlinked on purpose; an erasure that leaves them holding its keys is
            # still reported then.
            continue
        for h in cols:
            if h.how == "link" or (tname, h.column) in linked:
                continue
            why = ("a table without a primary key: map it once it has one, or its rows "
                   "stay" if keyless else "not in the mapping: relate it, or its rows stay")
            out.append(f"unmapped link: {schema}.{tname}.{h.column} -> {h.target} "
                       f"({h.how}; {why} when a {h.target} row is erased)")
    return out


def still_there(conn: sa.Connection, m: Mapping, grouped: dict[str, Group], dialect: str,
                limit: int) -> tuple[list[Finding], dict[str, dict[Any, set[str]]]]:
    """(findings of deleted-table rows that still exist, the erased keys: per table, key
    value -> subjects). Rows of tables kept by design (anonymise, retain, export only)
    are not read back."""
    left: list[Finding] = []
    gone: dict[str, dict[Any, set[str]]] = {}
    for name, group in grouped.items():
        tm = m.tables[name]
        if tm.action != "delete" or name in m.export_only:
            continue
        keys = group.keys()
        present: set[Key] = set()
        for chunk in chunks(keys, max(1, limit - 1)):
            where = pk_filter(tm.table, tm.pk, chunk, dialect)
            present.update(tuple(r) for r in conn.execute(sa.select(*tm.pk_cols()).where(where)))
        erased = gone.setdefault(name, {}) if len(tm.pk) == 1 else None
        for pk, f in zip(group.pks, group.findings, strict=True):
            if pk in present:
                left.append(f)
            elif erased is not None:
                erased.setdefault(pk[0], set()).add(f.subject)
    return left, {t: keys for t, keys in gone.items() if keys}


def key_residue(conn: sa.Connection, holders: dict[str, list[KeyHolder]],
                gone: dict[str, dict[Any, set[str]]], schema: str, dialect: str, limit: int,
                ) -> dict[tuple[str, str], list[Identifier]]:
    """(subject, ``schema.table.column``) of every row that still holds an erased key."""
    out: dict[tuple[str, str], list[Identifier]] = {}
    for tname, cols in sorted(holders.items()):
        wanted = [h for h in cols if gone.get(h.target)]
        if not wanted:
            continue
        table = wanted[0].table
        by_col: dict[str, dict[Any, set[str]]] = {}
        for h in wanted:
            merged = by_col.setdefault(h.column, {})
            for k, subjects in gone[h.target].items():
                merged.setdefault(k, set()).update(subjects)
        columns = [table.c[c] for c in by_col]
        # One statement for all the table's link columns (several while the keys exceed
        # the bound-parameter limit).
        for part in _parts(by_col, limit):
            where = sa.or_(*(in_values(dialect, table.c[c], keys, table.c[c].type)
                             for c, keys in part.items()))
            for row in conn.execute(sa.select(*columns).where(where)):
                for col, value in zip(by_col, row, strict=True):
                    for subject in by_col[col].get(value, ()):
                        out.setdefault((subject, f"{schema}.{tname}.{col}"), [])
    return out


def _parts(by_col: dict[str, dict[Any, set[str]]], limit: int
           ) -> Iterable[dict[str, Sequence[Any]]]:
    size = max(1, (limit - 1) // max(1, len(by_col)))
    longest = max(len(k) for k in by_col.values())
    for start in range(0, longest, size):
        part = {c: list(keys)[start:start + size] for c, keys in by_col.items()}
        yield {c: ks for c, ks in part.items() if ks}


def residue_finding(system: str, subject: str, place: str,
                    matched: tuple[Identifier, ...]) -> Finding:
    """The finding of one place still holding a subject's data (kind ``unmapped residue``)."""
    return Finding(system=system, subject=subject, ref=json.dumps([RESIDUE_KIND, place]),
                   kind=RESIDUE_KIND, matched=matched, fields=(place,))
