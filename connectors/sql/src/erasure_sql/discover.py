"""Propose a mapping from the reflected schema, column names and sampled values.

Sampled values are only classified (does it look like an email?); they are never stored,
printed, logged or put in the proposal: the output holds table and column names and counts.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import sqlalchemy as sa

from erasure import IdentifierType

from .dberrors import db_errors
from .values import python_type

__all__ = ["discover"]

SAMPLE_ROWS = 50
_MIN_SHARE = 0.6
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{6,18}[0-9]$")
_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}|^\d{1,2}[./]\d{1,2}[./]\d{2,4}")
_KEPT = ("invoice", "receipt", "payment", "tax", "ledger", "booking", "transaction")
_NAME = re.compile(r"^[A-ZÀ-Þ][a-zà-ÿ'’-]+( [A-ZÀ-Þ][a-zà-ÿ'’-]+){1,3}$")

_BY_NAME: list[tuple[IdentifierType, re.Pattern[str]]] = [
    (IdentifierType.EMAIL, re.compile(r"(^|_)e?-?mail(_?address)?$|^email", re.I)),
    (IdentifierType.PHONE, re.compile(r"(phone|mobile|tel(ephone)?|msisdn|fax)(_?number)?$", re.I)),
    (IdentifierType.IP, re.compile(r"(^|_)ip(_?addr(ess)?)?$|remote_addr", re.I)),
    (IdentifierType.NAME, re.compile(r"^(full_?|display_?|customer_?|contact_?)?name$", re.I)),
]


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _classify(text: str) -> IdentifierType | None:
    if _EMAIL.match(text):
        return IdentifierType.EMAIL
    if _is_ip(text):
        return IdentifierType.IP
    if _PHONE.match(text) and not _DATE.match(text) and sum(c.isdigit() for c in text) >= 7:
        return IdentifierType.PHONE
    if _NAME.match(text):
        return IdentifierType.NAME
    return None


def _sample(conn: sa.Connection, table: sa.Table, col: sa.Column[Any]) -> dict[str, int]:
    """Counts of identifier types among up to SAMPLE_ROWS non-null values (values dropped)."""
    stmt = sa.select(col).where(col.is_not(None)).limit(SAMPLE_ROWS)
    counts: dict[str, int] = {"total": 0}
    for (value,) in conn.execute(stmt):
        if not isinstance(value, str):
            continue
        counts["total"] += 1
        kind = _classify(value.strip())
        if kind is not None:
            counts[kind.value] = counts.get(kind.value, 0) + 1
    return counts


def _propose(conn: sa.Connection, table: sa.Table) -> tuple[dict[str, list[str]], list[str]]:
    """Identifier columns by type, and comment lines explaining each proposal."""
    found: dict[str, list[str]] = {}
    notes: list[str] = []
    for col in table.columns:
        reason = None
        itype: IdentifierType | None = None
        for t, pattern in _BY_NAME:
            if pattern.search(col.name):
                itype, reason = t, "column name"
                break
        if python_type(col) is str and not col.primary_key:
            counts = _sample(conn, table, col)
            total = counts.pop("total")
            if total:
                best = max(counts.items(), key=lambda kv: kv[1], default=None)
                if best and best[1] / total >= _MIN_SHARE:
                    sampled = IdentifierType(best[0])
                    share = f"{best[1]} of {total} sampled values look like {sampled.value}"
                    if itype is None:
                        itype, reason = sampled, share
                    elif itype is sampled:
                        reason = f"column name; {share}"
        if itype is not None:
            found.setdefault(itype.value, []).append(col.name)
            notes.append(f"#   {col.name}: {itype.value} ({reason})")
    pk = [c.name for c in table.primary_key.columns]
    lowered = table.name.lower()
    if len(pk) == 1 and (found or any(w in lowered for w in ("customer", "client", "user"))):
        kind = "user_id" if "user" in lowered else "customer_id"
        if any(w in lowered for w in ("customer", "client", "user", "account", "member")):
            found.setdefault(kind, []).append(pk[0])
            notes.append(f"#   {pk[0]}: {kind} (primary key of a people table)")
    return found, notes


def _fk_lines(table: sa.Table) -> list[str]:
    lines = []
    for fk in table.foreign_key_constraints:
        cols = ", ".join(e.parent.name for e in fk.elements)
        ref = ", ".join(e.column.name for e in fk.elements)
        lines.append(
            f"# foreign key ({cols}) -> {fk.referred_table.name} ({ref}), "
            f"ON DELETE {fk.ondelete or 'NO ACTION'}"
        )
    return lines


def discover(engine: sa.Engine, system: str, schema: str | None) -> str:
    """Reflect the schema and return a proposed mapping as TOML text (names only)."""
    meta = sa.MetaData(schema=schema)
    with db_errors("discover"):
        meta.reflect(engine, schema=schema)
    tables = sorted((t for t in meta.tables.values() if t.schema == schema), key=lambda t: t.name)
    proposals: dict[str, tuple[dict[str, list[str]], list[str]]] = {}
    with db_errors("discover"), engine.connect() as conn:
        for table in tables:
            proposals[table.name] = _propose(conn, table)
    personal = {n for n, (found, _) in proposals.items() if found}
    reached = set(personal)
    changed = True
    while changed:
        changed = False
        for table in tables:
            if table.name in reached:
                continue
            if any(fk.referred_table.name in reached for fk in table.foreign_key_constraints):
                reached.add(table.name)
                changed = True

    sys_key = f"systems.{_key(system)}"
    out = [
        f"# Proposed mapping for system {json.dumps(system)} (connector sql), from the schema,",
        "# column names and sampled values (values are only classified, never shown).",
        "# Review every table: choose action delete, anonymise (tables the law says to keep,",
        "# e.g. invoices) or retain with a reason, and add restrict_column where one exists.",
        f"[{sys_key}]",
        'connector = "sql"',
        "# url = ...  keep your current url setting",
    ]
    if schema is not None:
        out.append(f"schema = {json.dumps(schema)}")
    for table in tables:
        found, notes = proposals[table.name]
        out.append("")
        if table.name not in reached:
            out.append(f"# table {table.name}: no personal data detected, not linked; not mapped")
            continue
        out.append(f"[{sys_key}.tables.{_key(table.name)}]")
        if not table.primary_key.columns:
            out.append("# WARNING: no primary key; the connector needs one to reference rows")
        out.extend(_fk_lines(table))
        if found:
            out.append("# identifier columns found:")
            out.extend(notes)
            pairs = ", ".join(
                f"{k} = {json.dumps(v[0]) if len(v) == 1 else json.dumps(v)}"
                for k, v in found.items()
            )
            out.append(f"identifiers = {{ {pairs} }}")
        else:
            out.append("# reached through foreign keys from a table with identifiers")
        if any(word in table.name.lower() for word in _KEPT):
            out.append("# records the law may oblige you to keep: consider action = \"anonymise\"")
        out.append('action = "delete"')
    return "\n".join(out) + "\n"
