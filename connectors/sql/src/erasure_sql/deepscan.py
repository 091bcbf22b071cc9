"""Verification beyond the mapping: the text columns of every readable table searched for a
batch of subjects' strong identifiers (emails, phones), one statement per table.

A hit in a column the mapping does not search (an email copied into ``orders.notes``, a
customer table in a backup schema) is *unmapped residue*: reported by place
(``schema.table.column``), never by value. Values are always bound parameters (one array on
PostgreSQL, ``IN`` lists elsewhere); names come from the reflected schema only.

Whole values match as in ``find`` (emails case-insensitively). Emails and phones are also
found inside text, in the forms people write ("call bob@example.org after 5pm", "0113 000
0001 is Bob's desk", "+44 (0)113-000-0001"), in two stages, still one statement per table:

1. the database's cheap test, beside the whole-value test: a value with at least as many
   ASCII digits as the shortest national significant number of the batch (nested
   ``REPLACE`` of the ten digits; on SQLite only its length: reading the value costs less),
   or with an ``@`` and a character no bare address holds (a value that is only an address
   is matched whole). The rows it lets through are streamed (``yield_per``: a server-side
   cursor), never held whole;
2. :class:`erasure_sql.intext.TextFinder` searches a block of values at once (Aho-Corasick
   over the digits and the lower-cased bytes) and checks every hit exactly: the phone
   matcher's parsed number must be the subject's (``+44 113 000 00012`` is someone else's;
   with ``phone_region``, national forms too), an address must stand alone
   (``xbob@example.org`` is not ``bob@example.org``).

A regular expression of the whole batch per value, or windows of every value's digits
looked up in SQL, cost 10x-100x more (``bench/sql_deep_scan.py --text``). Names are only
matched whole.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from erasure import Finding, Identifier, IdentifierType, Subject
from erasure.phonetext import PhoneFinder, national_number

from .classify import is_text
from .forms import db_forms, too_many_forms
from .intext import TextFinder
from .mapping import Mapping
from .queries import Untyped, array_literal
from .settings import SqlSettings
from .values import chunks

__all__ = ["RESIDUE_KIND", "DeepScan", "ScanTarget", "residue_findings"]

#: ``Finding.kind`` of unmapped residue (``erasure.connector.UNMAPPED_RESIDUE``).
RESIDUE_KIND = "unmapped residue"
_STRONG = (IdentifierType.EMAIL, IdentifierType.PHONE)
_MIN_LENGTH = 6  # shorter columns cannot hold an email or a phone number
#: rows read from the server at a time (a server-side cursor) and searched as one block
_BLOCK = 2000
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
        collation that ignores accents or case cannot widen a match). Emails and phones are
        also found inside text; names only as the whole value. ``unmapped_only``: only
        tables outside the mapping (and other schemas).
        """
        wanted = sorted({v.lower() for v in values})
        self.statements = 0
        out: dict[str, dict[str, int]] = {}
        if not wanted:
            return out
        lookup = set(wanted)
        phones = PhoneFinder((v for v in wanted if _is_e164(v)), self._settings.phone_region)
        text = TextFinder((v for v in wanted if "@" in v), phones)
        with self._engine.connect() as conn:
            own = f"{self.own_schema()}."
            for target in self.targets():
                if unmapped_only and target.place.startswith(own) and (
                        target.table.name in self._mapping.tables):
                    continue
                for part in self._parts(conn, target, wanted, text):
                    _count(out, target, part, lookup, text)
        return out

    def _in_text(self, cols: Sequence[sa.ColumnElement[Any]], text: TextFinder
                 ) -> sa.ColumnElement[bool] | None:
        """The database's cheap test for values that may hold an email or a phone of the
        batch inside text: each is then read by :class:`TextFinder`.

        A phone: at least as many ASCII digits as the shortest national significant number
        of the batch (every written form holds that many; nested ``REPLACE`` of the ten
        digits; on SQLite only as many characters). An email: an ``@`` and a character no
        bare address holds (a space, ``<``, ``,``, a non-ASCII letter...) or a final dot: a
        value that is only an address is matched whole."""
        terms: list[sa.ColumnElement[bool]] = []
        keys = [k for k in map(national_number, text.phones.numbers) if k]
        least = min(map(len, keys), default=0)
        for c in cols:
            if keys:
                digitless: sa.ColumnElement[Any] = c
                for digit in "0123456789":
                    digitless = sa.func.replace(digitless, digit, "")
                long_enough = sa.func.length(c) >= least
                # SQLite: ten REPLACEs cost more than reading the value (measured)
                terms.append(long_enough if self._dialect == "sqlite" else sa.and_(
                    long_enough, sa.func.length(c) - sa.func.length(digitless) >= least))
            if text.emails:
                terms.append(sa.and_(c.like("%@%"),
                                     sa.or_(self._not_address(c), c.like("%@%."))))
        return sa.or_(*terms) if terms else None

    def _not_address(self, c: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """``c`` holds a character outside ``A-Za-z0-9._@-``."""
        if self._dialect == "sqlite":
            return c.op("GLOB")("*[^A-Za-z0-9._@-]*")
        if self._dialect == "postgresql":
            return sa.collate(c, "C").op("~")("[^A-Za-z0-9._@-]")
        return c.op("REGEXP")("[^A-Za-z0-9._@-]")

    def _select(self, conn: sa.Connection, cols: Sequence[sa.ColumnElement[Any]],
                where: sa.ColumnElement[bool]) -> Iterator[Sequence[Sequence[Any]]]:
        """The rows, a block at a time (a server-side cursor: a table is never held)."""
        self.statements += 1
        # on the statement, not the connection: the deadline's SET LOCAL (timeouts.py) must
        # not go through a server-side cursor
        result = conn.execute(sa.select(*cols).where(where).execution_options(
            yield_per=_BLOCK))
        yield from result.partitions()

    def _parts(self, conn: sa.Connection, target: ScanTarget, wanted: list[str],
               text: TextFinder) -> Iterator[Sequence[Sequence[Any]]]:
        cols = [target.table.c[c] for c in target.columns]
        in_text = self._in_text(cols, text) if text else None
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
            if in_text is not None:
                where = sa.or_(where, in_text)
            yield from self._select(conn, cols, where)
            return
        # SQLite's lower() is ASCII-only too; MySQL's follows the collation (forms harmless).
        forms = db_forms(wanted)
        if self._dialect == "sqlite" and _SQLITE_JSON:
            values: sa.BindParameter[str] = sa.bindparam("deep_values", json.dumps(forms))
            batch: sa.Select[Any] = sa.select(sa.literal_column("value")).select_from(
                sa.func.json_each(values))
            # Values with too many case forms to send: lowered by Python's rules instead.
            lower = sa.func.erasure_lower if too_many_forms(wanted) else sa.func.lower
            where = sa.or_(*(lower(c).in_(batch) for c in cols))
            if in_text is not None:
                where = sa.or_(where, in_text)
            yield from self._select(conn, cols, where)
            return
        # the cheap test's parameters go with the first part: leave room for them
        room = 0 if in_text is None else len(in_text.compile(dialect=conn.dialect).params)
        size = max(1, (self._limit - room) // len(cols))
        for part in chunks(forms, size):
            where = sa.or_(*(sa.func.lower(c).in_(list(part)) for c in cols))
            if in_text is not None:  # with the first part only: a row is read once
                where, in_text = sa.or_(where, in_text), None
            yield from self._select(conn, cols, where)


def _count(out: dict[str, dict[str, int]], target: ScanTarget, rows: Sequence[Sequence[Any]],
           lookup: set[str], text: TextFinder) -> None:
    """Add the matches of a block of rows to ``out``: whole values, then inside text.
    This sees every row the cheap test lets by: a column's values are joined into one text
    and compared by set operations, not one Python step a value."""
    for n, column in enumerate(zip(*rows, strict=True)):
        values = list(column)
        try:
            block = "\n".join(values)
        except TypeError:  # NULLs
            values = [v if isinstance(v, str) else "" for v in values]
            block = "\n".join(values)
        if block.count("\n") != len(values) - 1:  # a value of several lines: one line each
            block = "\n".join(v.replace("\n", " ") for v in values)
        keys = list(map(str.strip, block.lower().split("\n")))
        found: Counter[str] = Counter()
        whole: set[int] = set()
        if not lookup.isdisjoint(keys):
            for i, key in enumerate(keys):
                if key in lookup:
                    found[key] += 1
                    whole.add(i)
        if text:
            for i, matched in text.find(values, block).items():
                if i not in whole:
                    found.update(matched)
        if found:
            place = out.setdefault(f"{target.place}.{target.columns[n]}", {})
            for key, count in found.items():
                place[key] = place.get(key, 0) + count


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
