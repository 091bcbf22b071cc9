"""Which of find's lookups an index can serve, and the ``CREATE INDEX`` for the others.

find compares emails as ``lower(column)`` (case-insensitively) where the column's collation
is not case-insensitive already: a plain index on ``email`` cannot serve that, an index on
``lower(email)`` can (PostgreSQL, SQLite). On MariaDB/MySQL a column whose collation ends in
``_ci`` compares case-insensitively by itself: find compares it plainly, so a plain index
serves it. Other identifier columns and link columns are compared plainly. Nothing here is
a failure: ``erasure systems check`` and ``discover`` print the statements for a person to run.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from erasure import IdentifierType

from .mapping import Mapping
from .values import python_type

__all__ = ["Lookup", "case_insensitive", "lookups", "unserved"]


@dataclass(frozen=True)
class Lookup:
    """find compares ``table.column`` (``lower``: as ``lower(column)``) with a batch of values."""

    table: sa.Table
    column: str
    lower: bool


def case_insensitive(dialect: str, column: sa.Column[Any]) -> bool:
    """Whether the database compares this text column case-insensitively by itself
    (MariaDB/MySQL ``_ci`` collations): then no ``lower()`` is needed, nor wanted."""
    if dialect not in ("mysql", "mariadb"):
        return False
    collation = getattr(column.type, "collation", None)
    if collation is None and isinstance(column.table, sa.Table):
        kwargs = column.table.kwargs
        collation = kwargs.get("mysql_collate") or kwargs.get("mariadb_collate")
    return bool(collation) and str(collation).lower().endswith("_ci")


def lookups(m: Mapping, dialect: str) -> list[Lookup]:
    """Every column find looks rows up by: identifier columns and link columns."""
    out: dict[tuple[str, str], Lookup] = {}
    for tm in m.tables.values():
        for itype, col in tm.identifiers:
            column = tm.col(col)
            lower = (itype is IdentifierType.EMAIL and python_type(column) is str
                     and not case_insensitive(dialect, column))
            out.setdefault((tm.name, col), Lookup(tm.table, col, lower))
    for e in m.edges:
        if len(e.child_cols) == 1:
            child = m.tables[e.child]
            out.setdefault((e.child, e.child_cols[0]), Lookup(child.table, e.child_cols[0], False))
    return list(out.values())


def _squeeze(text: str) -> str:
    return re.sub(r'[\s"`()]|::[a-z ]+', "", text.lower())


def _served(conn: sa.Connection, dialect: str, lookup: Lookup) -> bool:
    table, col = lookup.table, lookup.column
    pk = [c.name for c in table.primary_key.columns]
    if not lookup.lower and pk and pk[0] == col:
        return True
    if dialect == "sqlite" and lookup.lower:
        rows = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND "
                                    "tbl_name = :t AND sql IS NOT NULL"), {"t": table.name})
        want = re.compile(r"\(\s*lower\s*\(\s*[\"`\[]?" + re.escape(col) + r"[\"`\]]?\s*\)\s*[,)]",
                          re.IGNORECASE)
        return any(want.search(sql) for (sql,) in rows)
    with warnings.catch_warnings():  # SQLite: "skipped ... expression-based index"
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        indexes = sa.inspect(conn).get_indexes(table.name, schema=table.schema)
    for index in indexes:
        names = index.get("column_names") or []
        if lookup.lower:
            exprs = index.get("expressions") or []
            if exprs and _squeeze(exprs[0]) == f"lower{col.lower()}":
                return True
        elif names and names[0] == col:
            return True
    return False


def unserved(engine: sa.Engine, m: Mapping) -> list[str]:
    """One line per lookup no index serves, with the statement that would serve it."""
    dialect = engine.dialect.name
    quote = engine.dialect.identifier_preparer.quote
    out = []
    with engine.connect() as conn:
        for lookup in lookups(m, dialect):
            if _served(conn, dialect, lookup):
                continue
            t = lookup.table
            where = f"{quote(t.schema)}.{quote(t.name)}" if t.schema else quote(t.name)
            name = quote(f"{t.name}_{lookup.column}_{'lower_' if lookup.lower else ''}idx"[:63])
            expr = f"lower({quote(lookup.column)})" if lookup.lower else quote(lookup.column)
            what = f"lower({lookup.column})" if lookup.lower else lookup.column
            out.append(f"no index serves find's lookups of {t.name}.{what} (every batch reads "
                       f"the whole table): CREATE INDEX {name} ON {where} ({expr});")
    return out
