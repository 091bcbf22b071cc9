"""Verification beyond the mapping: the text columns of every readable table searched for a
batch of subjects' strong identifiers (emails, phones), one statement per table.

A hit in a column the mapping does not search (an email copied into ``orders.notes``, a
customer table in a backup schema) is *unmapped residue*: reported by place
(``schema.table.column``), never by value. Values are always bound parameters (one array on
PostgreSQL, ``IN`` lists elsewhere); names come from the reflected schema only.

What it cannot see: an email inside longer text ("call bob@example.org") — matching is
whole-value equality (emails case-insensitively), like ``find``. Phones are also found in
the forms people write: a value whose digits, with separators (`` -.()/``) taken out, end
with a batch number's national significant number (``0113 000 0001``, ``+44 (0)113-000-
0001``, "call me on 0113 000 0001.") is read by :mod:`erasure.phonetext` and counts when
its number is the subject's (with ``phone_region``, national forms too). Text after the
number hides it ("0113 000 0001 is Bob's"): a search inside every value would cost a
regular expression of the whole batch per value (PostgreSQL: 100x, measured).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from erasure import Finding, Identifier, IdentifierType, Subject
from erasure.phonetext import PhoneFinder, national_number

from .classify import is_text
from .forms import db_forms, too_many_forms
from .mapping import Mapping
from .queries import Untyped, array_literal
from .settings import SqlSettings
from .values import chunks

__all__ = ["RESIDUE_KIND", "DeepScan", "ScanTarget", "residue_findings"]

#: ``Finding.kind`` of unmapped residue (``erasure.connector.UNMAPPED_RESIDUE``).
RESIDUE_KIND = "unmapped residue"
_STRONG = (IdentifierType.EMAIL, IdentifierType.PHONE)
_MIN_LENGTH = 6  # shorter columns cannot hold an email or a phone number
#: taken out of a value before its digits are compared with a number's (portable REPLACE)
_SEPARATORS = (" ", "-", ".", "(", ")", "/")
# json_each is built into SQLite from 3.38: the whole batch then goes as one parameter.
_SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38)


@dataclass(frozen=True)
class ScanTarget:
    """One table to scan: its reflected form, the columns searched, and its place name."""

    table: sa.Table
    columns: tuple[str, ...]
    place: str  # "schema.table"


def _long_enough(column: sa.Column[Any]) -> bool:
    length = getattr(column.type, "length", None)
    return length is None or length >= _MIN_LENGTH


class DeepScan:
    """The scan of one system: which tables and columns, and the statement per table."""

    def __init__(self, engine: sa.Engine, settings: SqlSettings, mapping: Mapping,
                 limit: int) -> None:
        self._engine = engine
        self._settings = settings
        self._mapping = mapping
        self._limit = limit
        self._dialect = engine.dialect.name
        self._targets: list[ScanTarget] | None = None
        self._own_name: str | None = None
        #: statements run by the last :meth:`scan` (for tests and the benchmark).
        self.statements = 0

    def own_schema(self) -> str:
        """The name of the system's schema, as places name it (``main`` on SQLite)."""
        if self._own_name is None:
            own = self._settings.db_schema or sa.inspect(self._engine).default_schema_name
            self._own_name = str(own)
        return self._own_name

    def targets(self) -> list[ScanTarget]:
        """Tables and text columns searched (reflected once)."""
        if self._targets is None:
            own = self.own_schema()
            out = [t for t in self._own(str(own)) if t.columns]
            for schema in self._settings.scan_schemas or ():
                if schema == own:
                    continue
                meta = sa.MetaData()
                meta.reflect(self._engine, schema=schema)
                for table in sorted(meta.tables.values(), key=lambda t: t.name):
                    if table.schema == schema:
                        target = self._target(schema, table, set())
                        if target.columns:
                            out.append(target)
            self._targets = out
        return self._targets

    def _own(self, own: str) -> Iterable[ScanTarget]:
        m = self._mapping
        for name in sorted(m.all_tables):
            tm = m.tables.get(name)
            skip: set[str] = set()
            if tm is not None:
                if tm.action == "retain":
                    continue  # kept on purpose, with a reason
                # find searches these for emails and phones itself; a "keep" rule keeps a
                # value on purpose.
                skip = {c for t, c in tm.identifiers if t in _STRONG} | set(tm.cfg.kept())
            yield self._target(own, m.all_tables[name], skip)

    def _target(self, schema: str, table: sa.Table, skip: set[str]) -> ScanTarget:
        excluded: set[str] = set()
        for ex in self._settings.deep_scan.exclude:
            if ex.table == table.name and ex.schema_ in (None, schema):
                if ex.column is None:
                    return ScanTarget(table, (), f"{schema}.{table.name}")
                excluded.add(ex.column)
        cols = tuple(c.name for c in table.columns
                     if is_text(c) and _long_enough(c) and c.name not in skip | excluded)
        return ScanTarget(table, cols, f"{schema}.{table.name}")

    def scan(self, values: Iterable[str], unmapped_only: bool = False
             ) -> dict[str, dict[str, int]]:
        """Per place ``schema.table.column``, how many rows hold each matched value.

        ``values``: normalised strong identifiers (emails lower-case, phones E.164), or
        names. The returned values are the caller's own, matched again in Python (a
        collation that ignores accents or case cannot widen a match). ``unmapped_only``:
        only tables outside the mapping (and other schemas).
        """
        wanted = sorted({v.lower() for v in values})
        self.statements = 0
        out: dict[str, dict[str, int]] = {}
        if not wanted:
            return out
        lookup = set(wanted)
        phones = PhoneFinder((v for v in wanted if _is_e164(v)), self._settings.phone_region)
        with self._engine.connect() as conn:
            own = f"{self.own_schema()}."
            for target in self.targets():
                if unmapped_only and target.place.startswith(own) and (
                        target.table.name in self._mapping.tables):
                    continue
                for row_cols, row in self._rows(conn, target, wanted, phones):
                    for name, value in zip(row_cols, row, strict=True):
                        if not isinstance(value, str):
                            continue
                        if (key := value.strip().lower()) in lookup:
                            keys: Iterable[str] = (key,)
                        elif phones:  # a number written another way, checked whole
                            keys = phones.find(value)
                        else:
                            continue
                        for key in keys:
                            place = out.setdefault(f"{target.place}.{name}", {})
                            place[key] = place.get(key, 0) + 1
        return out

    def _written_phones(self, cols: Sequence[sa.ColumnElement[Any]], phones: PhoneFinder
                        ) -> sa.ColumnElement[bool] | None:
        """Values whose digits, separators taken out, end with a number of the batch (its
        national significant number): one comparison per length, hashed on PostgreSQL;
        each candidate is then read by the phone matcher."""
        by_length: dict[int, list[str]] = {}
        for number in phones.numbers:
            key = national_number(number)
            if key:
                by_length.setdefault(len(key), []).append(key)
        if not by_length:
            return None
        terms = []
        for n, (length, keys) in enumerate(sorted(by_length.items())):
            for c in cols:
                # nested REPLACE: on every engine, and on PostgreSQL faster than one
                # translate() or regexp_replace() (measured)
                squeezed: sa.ColumnElement[Any] = c
                for sep in _SEPARATORS:
                    squeezed = sa.func.replace(squeezed, sep, "")
                tail = (sa.func.substr(squeezed, -length) if self._dialect == "sqlite"
                        else sa.func.right(squeezed, length))
                if self._dialect == "postgresql":
                    array = sa.cast(sa.bindparam(f"phone_keys_{n}", array_literal(sorted(keys)),
                                                 type_=Untyped()), postgresql.ARRAY(sa.Text))
                    terms.append(tail == sa.any_(array))
                elif self._dialect == "sqlite" and _SQLITE_JSON:  # one parameter a length
                    keys_json: sa.BindParameter[str] = sa.bindparam(
                        f"phone_keys_{n}", json.dumps(sorted(keys)))
                    terms.append(tail.in_(sa.select(sa.literal_column("value")).select_from(
                        sa.func.json_each(keys_json))))
                else:
                    terms.append(tail.in_(sorted(keys)))
        return sa.or_(*terms)

    def _rows(self, conn: sa.Connection, target: ScanTarget, wanted: list[str],
              phones: PhoneFinder) -> Iterable[tuple[tuple[str, ...], Sequence[Any]]]:
        cols = [target.table.c[c] for c in target.columns]
        written = self._written_phones(cols, phones) if phones else None
        if self._dialect == "postgresql":
            # One array parameter, hashed by the server (PostgreSQL 14+): one pass. Columns
            # are lowered in the C collation (ASCII only, see c_lower_forms).
            # A value of another byte length cannot match: that test costs next to nothing
            # and spares lowering most values of columns that hold something else.
            forms = db_forms(wanted)
            literal = array_literal(forms) or "{}"
            array = sa.cast(sa.bindparam("deep_values", literal, type_=Untyped()),
                            postgresql.ARRAY(sa.Text))
            sizes = "{" + ",".join(map(str, sorted({len(f.encode()) for f in forms}))) + "}"
            lengths = sa.cast(sa.bindparam("deep_sizes", sizes, type_=Untyped()),
                              postgresql.ARRAY(sa.Integer))
            where = sa.or_(*(
                sa.func.lower(sa.collate(c, "C")) == sa.any_(array)
                if isinstance(c.type, sa.CHAR)  # padded: its byte length is the column's
                else sa.and_(sa.func.octet_length(c) == sa.any_(lengths),
                             sa.func.lower(sa.collate(c, "C")) == sa.any_(array))
                for c in cols))
            if written is not None:
                where = sa.or_(where, written)
            self.statements += 1
            for row in conn.execute(sa.select(*cols).where(where)):
                yield target.columns, row
            return
        # SQLite's lower() is ASCII-only too; MySQL's follows the collation (forms harmless).
        forms = db_forms(wanted)
        if self._dialect == "sqlite" and _SQLITE_JSON:
            values: sa.BindParameter[str] = sa.bindparam("deep_values", json.dumps(forms))
            batch: sa.Select[Any] = sa.select(sa.literal_column("value")).select_from(
                sa.func.json_each(values))
            self.statements += 1
            # Values with too many case forms to send: lowered by Python's rules instead.
            lower = sa.func.erasure_lower if too_many_forms(wanted) else sa.func.lower
            where = sa.or_(*(lower(c).in_(batch) for c in cols))
            if written is not None:
                where = sa.or_(where, written)
            for row in conn.execute(sa.select(*cols).where(where)):
                yield target.columns, row
            return
        # the numbers' keys go with the first part: leave room for their parameters
        keys = len(phones.numbers) * len(cols) if written is not None else 0
        size = max(1, (self._limit - keys) // len(cols))
        for part in chunks(forms, size):
            where = sa.or_(*(sa.func.lower(c).in_(list(part)) for c in cols))
            if written is not None:  # with the first part only: a row is read once
                where, written = sa.or_(where, written), None
            self.statements += 1
            for row in conn.execute(sa.select(*cols).where(where)):
                yield target.columns, row


def _is_e164(value: str) -> bool:
    return value.startswith("+") and value[1:].isdigit()


def strong_values(subjects: Sequence[Subject]) -> dict[str, list[tuple[str, Identifier]]]:
    """lower-cased strong identifier value -> (subject key, identifier)."""
    index: dict[str, list[tuple[str, Identifier]]] = {}
    for s in subjects:
        for ident in s.identifiers:
            if ident.type in _STRONG:
                for form in ident.forms():  # an email's domain in Unicode or punycode
                    index.setdefault(form.lower(), []).append((s.key, ident))
    return index


def residue_findings(system: str, subjects: Sequence[Subject],
                     hits: dict[str, dict[str, int]]) -> list[Finding]:
    """One finding per subject and place holding one of its strong identifiers."""
    index = strong_values(subjects)
    per: dict[tuple[str, str], list[Identifier]] = {}
    for place, counts in hits.items():
        for value in counts:
            for key, ident in index.get(value, ()):
                per.setdefault((key, place), []).append(ident)
    return [Finding(system=system, subject=key, ref=json.dumps([RESIDUE_KIND, place]),
                    kind=RESIDUE_KIND, matched=tuple(dict.fromkeys(idents)), fields=(place,))
            for (key, place), idents in sorted(per.items())]
