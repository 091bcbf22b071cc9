"""Links between tables the schema may not declare: foreign keys, and columns named after
another table's key (``customer_id``, ``customerid``, ``shipping_address_id``) whose type
matches and whose sampled values are found there. Only counts leave the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .values import python_type

__all__ = ["Link", "infer_links", "named_after", "same_kind", "stems"]

SAMPLE = 50
_MIN_OVERLAP = 0.5


@dataclass(frozen=True)
class Link:
    """``child.column`` holds keys of ``parent.key`` (child rows point at a parent row)."""

    child: str
    column: str
    parent: str
    key: str
    evidence: str
    declared: bool = False


def stems(table: str) -> list[str]:
    """Names a column may use for ``table``: ``orders`` -> orders, order."""
    low = table.lower()
    out = [low]
    if low.endswith("ies"):
        out.append(low[:-3] + "y")
    elif low.endswith("s") and not low.endswith("ss"):
        out.append(low[:-1])
    return out


def named_after(column: str, stems: list[str]) -> bool:
    low = column.lower()
    for stem in stems:
        for suffix in (f"{stem}_id", f"{stem}id"):
            if low == suffix or low.endswith("_" + suffix):
                return True
    return False


def same_kind(a: sa.Column[Any], b: sa.Column[Any]) -> bool:
    ta, tb = python_type(a), python_type(b)
    return ta is not None and ta is tb


def _overlap(conn: sa.Connection, child: sa.Column[Any], key: sa.Column[Any]) -> tuple[int, int]:
    """(distinct sampled values, how many of them are keys): counted in the database."""
    sample = (sa.select(child.label("v")).where(child.is_not(None)).distinct()
              .limit(SAMPLE).subquery())
    stmt = (sa.select(sa.func.count(), sa.func.count(key))
            .select_from(sample.outerjoin(key.table, key == sample.c.v)))
    total, found = conn.execute(stmt).one()
    return int(total), int(found)


def infer_links(conn: sa.Connection, tables: list[sa.Table]) -> tuple[list[Link], list[str]]:
    """Links among ``tables`` (declared first), and notes on candidates that were rejected."""
    links: list[Link] = []
    notes: list[str] = []
    by_name = {t.name: t for t in tables}
    declared: set[tuple[str, str]] = set()
    for t in tables:
        for fk in t.foreign_key_constraints:
            if len(fk.elements) != 1 or fk.referred_table.name not in by_name:
                continue
            (el,) = fk.elements
            declared.add((t.name, el.parent.name))
            links.append(Link(t.name, el.parent.name, fk.referred_table.name, el.column.name,
                              f"foreign key ON DELETE {fk.ondelete or 'NO ACTION'}", True))
    for t in tables:
        for col in t.columns:
            if (t.name, col.name) in declared:
                continue
            # The longest table name that the column is named after: shipping_address_id is
            # address's, not a table called "id".
            candidates = [p for p in tables if p.name != t.name
                          and len(p.primary_key.columns) == 1
                          and named_after(col.name, stems(p.name))]
            if not candidates:
                continue
            parent = max(candidates, key=lambda p: len(p.name))
            (key,) = parent.primary_key.columns
            where = f"{t.name}.{col.name} -> {parent.name}.{key.name}"
            if not same_kind(col, key):
                notes.append(f"{where}: named like a link but the types differ; not linked")
                continue
            total, found = _overlap(conn, col, key)
            if total and found / total < _MIN_OVERLAP:
                notes.append(f"{where}: named like a link but only {found} of {total} sampled "
                             "values are keys there; not linked")
                continue
            sampled = (f"{found} of {total} sampled values found there" if total
                       else "no values to sample")
            links.append(Link(t.name, col.name, parent.name, key.name,
                              f"inferred: name {col.name}, types match, {sampled}"))
    return links, notes
