"""Finding rows: batched identifier lookups, then foreign keys followed to child rows."""

from __future__ import annotations

import concurrent.futures as cf
import functools
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from erasure import Finding, Identifier, IdentifierType, Subject
from erasure.models import email_forms

from .dberrors import db_errors
from .emitting import Emitter, only_way_in, shrinking_parts
from .entries import Entry, Link, merged, record_direct
from .forms import db_forms, too_many_forms
from .indexes import case_insensitive
from .mapping import Edge, Mapping, TableModel
from .overlap import Overlapped
from .queries import ArrayLookup, array_literal, in_values, tuple_in
from .values import (
    NO_MATCH,
    Key,
    chunks,
    coerce,
    db_normaliser,
    encode_ref,
    json_str,
    python_type,
)

__all__ = ["SHARED_FIELD", "FindMixin"]

#: Last of ``Finding.fields`` of a row reached only through a link that is not its
#: owner's: someone else's row, reported for review, never erased nor exported.
SHARED_FIELD = "(shared: not the owner's link)"

_TID_CACHE = 100_000  # rows whose ctid is remembered between find and delete (~20 MB)
_REF_MEMO = 100_000  # refs handed out by find, remembered decoded


def _key_getter(positions: list[int]) -> Callable[[Any], Key]:
    """A function returning the values at ``positions`` of a row, always as a tuple."""
    if len(positions) == 1:
        (i,) = positions
        return lambda row: (row[i],)
    return operator.itemgetter(*positions)


class FindMixin:
    """``find`` of the sql connector (mixed into :class:`~erasure_sql.SqlConnector`)."""

    system: str
    _engine: sa.Engine
    _limit: int
    _dialect: str
    _tids: dict[str, dict[Key, str]]
    _refs: dict[str, dict[str, Key]]
    _lookups: dict[tuple[Any, ...], ArrayLookup]

    def _worker(self) -> cf.Executor | None:
        raise NotImplementedError

    def mapping(self) -> Mapping:
        raise NotImplementedError

    def _columns(self, m: Mapping, tm: TableModel) -> list[sa.Column[Any]]:
        """Columns find reads from ``tm`` (same for every query, so rows can be merged)."""
        names = dict.fromkeys(tm.pk)
        names.update(dict.fromkeys(c for _t, c in tm.identifiers))
        for e in m.edges:
            if e.parent == tm.name:
                names.update(dict.fromkeys(e.parent_cols))
            if e.child == tm.name:
                names.update(dict.fromkeys(e.child_cols))
        return [tm.table.c[n] for n in names]

    def _tid_cache(self, tm: TableModel) -> dict[Key, str] | None:
        """Where find notes the physical row ids (PostgreSQL ctid) of a table's rows, if used.

        Delete then reaches rows by ctid instead of probing the primary key index again,
        and checks the keys it deleted (see ``EraseMixin._delete_by_tid``).
        """
        if self._dialect != "postgresql" or tm.action != "delete":
            return None
        return self._tids.setdefault(tm.name, {})

    def _select(self, columns: list[sa.Column[Any]], tids: dict[Key, str] | None) -> sa.Select:
        """SELECT of ``columns``, plus the row's ctid as text last when ``tids`` is used."""
        if tids is None:
            return sa.select(*columns)
        return sa.select(*columns, sa.cast(sa.literal_column("ctid"), sa.Text))

    def _rows_where(
        self, db: Overlapped, tm: TableModel, cols: list[sa.Column[Any]],
        tids: dict[Key, str] | None, expr: Any, type_: Any, values: Sequence[Any], label: str,
    ) -> list[Any]:
        """The rows of ``cols`` (plus ctid with ``tids``) whose ``expr`` is one of ``values``.

        ``label`` names ``expr`` (a column, or ``lower(column)``) in the cache of lookups.
        """
        if self._dialect == "postgresql":
            key = (tm.name, tuple(c.name for c in cols), label, tids is not None)
            lookup = self._lookups.get(key)
            if lookup is None:
                select = self._select(cols, tids)
                lookup = self._lookups[key] = ArrayLookup(self._engine.dialect, select, expr, type_)
            # Built only for a lookup that uses it: the fallback below builds its own.
            literal = array_literal(values) if lookup.plain else None
            if literal is not None:
                return db.run(functools.partial(lookup.rows, db.conn, literal))
        return db.all(self._select(cols, tids).where(
            in_values(self._dialect, expr, values, type_)))

    def _positions(self, m: Mapping, tm: TableModel) -> dict[str, int]:
        return {c.name: i for i, c in enumerate(self._columns(m, tm))}

    def _keeps_rows(self, m: Mapping, tm: TableModel) -> bool:
        """Whether find needs a table's rows after reading them (for related or child keys)."""
        return bool(tm.identifiers) or any(e.parent == tm.name for e in m.edges)

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        subjects = list(subjects)
        if not subjects:
            return iter(())
        m = self.mapping()
        index: dict[tuple[IdentifierType, str], list[tuple[str, Identifier]]] = {}
        for s in subjects:
            for ident in s.identifiers:
                index.setdefault((ident.type, ident.value), []).append((s.key, ident))
        return iter(self._find(m, index))

    def _find(
        self, m: Mapping,
        index: dict[tuple[IdentifierType, str], list[tuple[str, Identifier]]],
    ) -> list[Finding]:
        # hits[table][pk] = {subject key: (matched identifiers, matched fields)}. Rows matched
        # the same way share one entry dict (thousands of rows, few distinct entries); an entry
        # is never changed in place, a merge replaces it with a new dict.
        hits: dict[str, dict[Key, Entry]] = {t: {} for t in m.tables}
        rows: dict[str, dict[Key, Any]] = {t: {} for t in m.tables}
        frontier: dict[str, set[Key]] = {}
        if sum(map(len, self._tids.values())) > _TID_CACHE:
            self._tids.clear()
        if sum(map(len, self._refs.values())) > _REF_MEMO:
            self._refs.clear()
        # shared[table][pk] = {subject: identifiers}: rows reached through a link that is
        # not their owner's (see mapping._owners), reported apart and never followed on.
        shared: dict[str, dict[Key, dict[str, dict[Identifier, None]]]] = {}
        emitter = Emitter(functools.partial(self._emit, m), m, hits, rows)
        with db_errors("find"), self._engine.connect() as conn:
            if self._dialect == "postgresql":
                # Read-only, and each statement sees its own snapshot either way: no BEGIN
                # and ROLLBACK round trips.
                conn.execution_options(isolation_level="AUTOCOMMIT")
            db = Overlapped(conn, self._worker())
            # With a worker, matching rows are noted at once and their entries built while
            # the server reads their child rows (the child query needs only their keys).
            pending = _Pending() if db.executor is not None else None
            for tm in m.tables.values():
                cols = self._columns(m, tm)
                for itype, col in tm.identifiers:
                    new = self._find_direct(db, tm, cols, itype, col, index, hits[tm.name],
                                            rows[tm.name], pending)
                    frontier.setdefault(tm.name, set()).update(new)
            finish = pending.run if pending is not None else _nothing
            while frontier:
                # Findings of settled tables are built while the server reads child rows.
                db.meanwhile = finish
                db.also(functools.partial(emitter.settled, set(frontier)))
                frontier = self._follow(db, m, frontier, hits, rows, emitter, finish, shared)
                db.meanwhile = None
            finish()
        emitter.settled(set())
        if shared:
            self._emit_shared(m, shared, hits, emitter.out)
        return emitter.out

    def _emit_shared(
        self, m: Mapping, shared: dict[str, dict[Key, dict[str, dict[Identifier, None]]]],
        hits: dict[str, dict[Key, Entry]], out: list[Finding],
    ) -> None:
        """Findings of rows a subject reaches only through a link that is not their owner's:
        no identifier in ``matched`` (the host lists them for review), ``fields`` ending
        with :data:`SHARED_FIELD` (delete and export leave them alone if given them)."""
        for tname, per_row in shared.items():
            tm = m.tables[tname]
            refs = self._refs.setdefault(tname, {})
            ref_of = _ref_maker(tm)
            links = tuple(dict.fromkeys(c for e in m.edges if e.child == tname and not e.owner
                                        for c in e.child_cols))
            for pk, owners in per_row.items():
                own = hits[tname].get(pk, {})
                ref = ref_of(pk)
                for skey in owners:
                    if skey in own:
                        continue  # also reached through the owner's link: the subject's
                    refs[ref] = pk
                    # No identifier matched it as the subject's: the host lists it for
                    # review and never acts on it (nor exports it).
                    out.append(Finding(self.system, skey, ref, tname, (),
                                       (*links, SHARED_FIELD), ()))

    def _emit(
        self, m: Mapping, tm: TableModel, table_hits: dict[Key, Entry],
        table_rows: dict[Key, Any], out: list[Finding],
    ) -> None:
        """Append the findings of one table's matched rows to ``out``."""
        append = out.append
        system, tname = self.system, tm.name
        refs = self._refs.setdefault(tname, {})
        pos = self._positions(m, tm)
        ident_at = [(itype, pos[col], db_normaliser(itype)) for itype, col in tm.identifiers]
        related_of = self._related
        # Entries are shared between rows: turn each into (subject, matched, fields) once.
        plans: dict[int, list[tuple[str, tuple[Identifier, ...], tuple[str, ...]]]] = {}
        ref_of = _ref_maker(tm)
        related: tuple[Identifier, ...] = ()
        for pk, entry in table_hits.items():
            if ident_at:
                related = related_of(ident_at, table_rows[pk])
            ref = ref_of(pk)
            refs[ref] = pk
            plan = plans.get(id(entry))
            if plan is None:
                plan = plans[id(entry)] = [(skey, tuple(matched), tuple(fields))
                                           for skey, (matched, fields) in entry.items()]
            for skey, matched, fields in plan:
                append(Finding(system, skey, ref, tname, matched, fields, related))

    def _find_direct(
        self, db: Overlapped, tm: TableModel, cols: list[sa.Column[Any]],
        itype: IdentifierType, col: str,
        index: dict[tuple[IdentifierType, str], list[tuple[str, Identifier]]],
        table_hits: dict[Key, Entry], table_rows: dict[Key, Any],
        pending: _Pending | None = None,
    ) -> set[Key]:
        """Look up the wanted values of one identifier column; return the matching rows' keys.

        The rows are noted at once; their match entries are built then, or with ``pending``
        later (before anything reads ``table_hits``).
        """
        column = tm.col(col)
        email = itype is IdentifierType.EMAIL and python_type(column) is str
        wanted: dict[Any, list[tuple[str, Identifier]]] = {}
        for (t, value), owners in index.items():
            if t is not itype:
                continue
            if email:  # every form a store may hold: the domain in Unicode or punycode
                for form in email_forms(value):
                    wanted.setdefault(form, []).extend(owners)
                continue
            key = coerce(column, value, self._dialect)
            if key is not NO_MATCH and key is not None:
                wanted.setdefault(key, []).extend(owners)
        if not wanted:
            return set()
        expr: Any = column
        label = col
        search: list[Any] = list(wanted)
        if email:
            # Sent in every shape the database's lower() may give (see erasure_sql.forms),
            # and checked again below with Python's.
            search = db_forms(wanted)
            python = self._dialect == "sqlite" and too_many_forms(wanted)
            if case_insensitive(self._dialect, column):
                pass  # its collation compares case-insensitively: a plain index serves it
            elif python:
                expr, label = sa.func.erasure_lower(column), f"erasure_lower({col})"
            else:
                expr, label = sa.func.lower(column), f"lower({col})"
        new: set[Key] = set()
        pos = {c.name: i for i, c in enumerate(cols)}
        at, pk_of = pos[col], _key_getter([pos[c] for c in tm.pk])
        tids = self._tid_cache(tm)
        tid_at = len(cols)
        matched: list[tuple[Key, Any]] = []  # (row key, matched value)
        for chunk in chunks(search, self._limit - 1):
            for row in self._rows_where(db, tm, cols, tids, expr, column.type, chunk, label):
                raw = row[at]
                # Exact re-check in Python: collations may equate values that are not equal.
                value = raw.lower() if email and isinstance(raw, str) else raw
                if value not in wanted:
                    continue
                pk = pk_of(row)
                table_rows[pk] = row
                if tids is not None:
                    tids[pk] = row[tid_at]
                matched.append((pk, value))
                new.add(pk)
        build = functools.partial(record_direct, matched, wanted, {col: None}, table_hits)
        if pending is None:
            build()
        else:
            pending.add(build)
        return new

    def _follow(
        self, db: Overlapped, m: Mapping, frontier: dict[str, set[Key]],
        hits: dict[str, dict[Key, Entry]], rows: dict[str, dict[Key, Any]],
        emitter: Emitter, finish: Callable[[], None] = lambda: None,
        shared: dict[str, dict[Key, dict[str, dict[Identifier, None]]]] | None = None,
    ) -> dict[str, set[Key]]:
        """Find child rows of the rows in ``frontier``; return the rows new or changed.

        ``finish`` completes the parents' match entries (see :meth:`_find_direct`): child
        rows are read by the parents' keys alone, and linked to subjects after that.
        """
        nxt: dict[str, set[Key]] = {}
        unsettled = m.descendants(frontier)
        for parent, pks in frontier.items():
            ppos = self._positions(m, m.tables[parent])
            parent_rows, parent_hits = rows[parent], hits[parent]
            for e in m.children(parent):
                child = m.tables[e.child]
                # One-column links (the usual foreign key) are keyed by the bare value.
                single = len(e.child_cols) == 1
                ppos_e = [ppos[c] for c in e.parent_cols]
                key_of = operator.itemgetter(ppos_e[0]) if single else _key_getter(ppos_e)
                by_key: dict[Any, list[Key]] = {}
                for pk in pks:
                    keyv = key_of(parent_rows[pk])
                    if keyv is None or (not single and any(v is None for v in keyv)):
                        continue
                    by_key.setdefault(keyv, []).append(pk)
                if by_key and not e.owner:
                    # Someone else's rows, perhaps: noted apart, never followed further.
                    if shared is not None:
                        self._follow_shared(db, e, child, Link(by_key, parent_hits, finish),
                                            shared.setdefault(child.name, {}))
                elif by_key:
                    # Rows that only this link can reach, from parents that will not change,
                    # are final once read: their findings are built part by part.
                    stream = (parent not in unsettled and not hits[child.name]
                              and only_way_in(m, e))
                    link = Link(by_key, parent_hits, finish)
                    self._follow_edge(db, m, e, child, link, hits, rows, nxt,
                                      emitter if stream else None)
        return {t: pks for t, pks in nxt.items() if pks}

    def _follow_edge(
        self, db: Overlapped, m: Mapping, e: Edge, child: TableModel,
        link: Link, hits: dict[str, dict[Key, Entry]], rows: dict[str, dict[Key, Any]],
        nxt: dict[str, set[Key]], emitter: Emitter | None = None,
    ) -> None:
        """Read the child rows whose link columns hold a key of ``link``; record their hits.

        With ``emitter`` the rows are read in parts, each part's findings built while the
        server reads the next (the caller has checked that these rows are final).
        """
        cols = self._columns(m, child)
        cpos = {c.name: i for i, c in enumerate(cols)}
        ccols = [child.col(c) for c in e.child_cols]
        single = len(ccols) == 1
        link_of = (operator.itemgetter(cpos[e.child_cols[0]]) if single
                   else _key_getter([cpos[c] for c in e.child_cols]))
        pk_of = _key_getter([cpos[c] for c in child.pk])
        edge_fields = dict.fromkeys(e.child_cols)
        child_hits = hits[child.name]
        # Leaf tables without identifier columns: their rows are not needed again.
        child_rows = rows[child.name] if self._keeps_rows(m, child) else None
        tids = self._tid_cache(child)
        tid_at = len(cols)
        shared: dict[Any, Entry] = {}
        # Rows whose hits are new or grew are followed further, if the child has children.
        new = nxt.setdefault(child.name, set()) if m.children(child.name) else None

        def record(result: list[Any]) -> list[Key]:
            got = []
            owners_of = link.owners().get
            for row in result:
                keyv = link_of(row)
                owners = owners_of(keyv)
                if not owners:
                    continue
                pk = pk_of(row)
                got.append(pk)
                if child_rows is not None:
                    child_rows[pk] = row
                if tids is not None:
                    tids[pk] = row[tid_at]
                add = shared.get(keyv)
                if add is None:
                    add = shared[keyv] = {s: (i, edge_fields) for s, i in owners.items()}
                entry = child_hits.get(pk)
                if entry is None:  # the usual case: one parent row
                    child_hits[pk] = add
                    if new is not None:
                        new.add(pk)
                else:
                    combined, grew = merged(entry, add)
                    child_hits[pk] = combined
                    if grew and new is not None:
                        new.add(pk)
            return got

        keys = link.keys()
        db.also(link.owners)  # built while the first part is read
        size = (self._limit - 1) // len(ccols)
        if emitter is not None and db.executor is not None:
            parts: Sequence[Sequence[Any]] = shrinking_parts(keys, size)
            emitter.claim(child.name)
        else:
            parts = list(chunks(keys, size))
            emitter = None
        emit_part: Callable[[list[Any]], None] | None = None
        if emitter is not None:
            if new is None and child_rows is None:
                # A leaf read only through this link: each row comes once, and nothing looks
                # at its hits again, so its findings are built straight from the rows.
                emit_part = self._leaf_emitter(child, link, link_of, pk_of, tids, tid_at,
                                               tuple(edge_fields), emitter.out)
            else:
                emit_part = functools.partial(emitter.part, child, record)
        last: list[Any] | None = None
        for chunk in parts:
            if emit_part is not None and last is not None:
                db.also(functools.partial(emit_part, last))
            if single:
                result = self._rows_where(db, child, cols, tids, ccols[0], ccols[0].type, chunk,
                                          e.child_cols[0])
            else:
                result = db.all(self._select(cols, tids).where(tuple_in(ccols, chunk)))
            if emit_part is None:
                record(result)
            else:
                last = result
        if emit_part is not None and last is not None:
            emit_part(last)

    def _follow_shared(
        self, db: Overlapped, e: Edge, child: TableModel, link: Link,
        found: dict[Key, dict[str, dict[Identifier, None]]],
    ) -> None:
        """Note the rows of ``child`` that link ``e`` (not the child's owner link) reaches
        from the subjects' rows: their keys and which subjects reach them."""
        cols = [*child.pk_cols(), *(child.col(c) for c in e.child_cols)]
        n = len(child.pk)
        size = (self._limit - 1) // len(e.child_cols)
        single = len(e.child_cols) == 1
        for chunk in chunks(link.keys(), size):
            if single:
                where = in_values(self._dialect, cols[n], chunk, cols[n].type)
            else:
                where = tuple_in(cols[n:], chunk)
            for row in db.all(sa.select(*cols).where(where)):
                keyv = row[n] if single else tuple(row[n:])
                for skey, idents in link.owners().get(keyv, {}).items():
                    have = found.setdefault(tuple(row[:n]), {})
                    have[skey] = {**have.get(skey, {}), **idents}

    def _leaf_emitter(
        self, tm: TableModel, link: Link, link_of: Callable[[Any], Any],
        pk_of: Callable[[Any], Key], tids: dict[Key, str] | None, tid_at: int,
        fields: tuple[str, ...], out: list[Finding],
    ) -> Callable[[list[Any]], None]:
        """A function appending the findings of rows of ``tm`` (a leaf table that only
        ``link`` reaches, see :func:`only_way_in`) to ``out``, one part of rows at a time."""
        system, tname = self.system, tm.name
        refs = self._refs.setdefault(tname, {})
        ref_of = _ref_maker(tm)
        # link key -> (subject, matched identifiers, fields) of every subject it stands for
        plans: dict[Any, list[tuple[str, tuple[Identifier, ...], tuple[str, ...]]]] = {}

        def emit_part(result: list[Any]) -> None:
            owners_of = link.owners().get
            append = out.append
            for row in result:
                keyv = link_of(row)
                plan = plans.get(keyv)
                if plan is None:
                    owners = owners_of(keyv)
                    plan = plans[keyv] = ([(s, tuple(i), fields) for s, i in owners.items()]
                                          if owners else [])
                if not plan:
                    continue  # a link value not asked for, that a collation equated
                pk = pk_of(row)
                if tids is not None:
                    tids[pk] = row[tid_at]
                ref = ref_of(pk)
                refs[ref] = pk
                for skey, matched, fs in plan:
                    append(Finding(system, skey, ref, tname, matched, fs, ()))

        return emit_part

    @staticmethod
    def _related(
        ident_at: list[tuple[IdentifierType, int, Callable[[Any], str | None]]], row: Any
    ) -> tuple[Identifier, ...]:
        out: dict[Identifier, None] = {}
        for itype, i, normalise in ident_at:
            raw = row[i]
            value = None if raw is None else normalise(raw)
            if value is not None:
                out[Identifier(itype, value)] = None
        return tuple(out)


def _nothing() -> None:
    return None


def _ref_maker(tm: TableModel) -> Callable[[Key], str]:
    """``encode_ref`` for rows of ``tm``; one integer key is formatted without the call."""
    tname = tm.name
    if tm.pk_types != (int,):
        return functools.partial(encode_ref, tname)
    prefix = f"[{json_str(tname)},["

    def ref_of(pk: Key) -> str:
        return f"{prefix}{pk[0]}]]" if type(pk[0]) is int else encode_ref(tname, pk)

    return ref_of


class _Pending:
    """Work left for later, done once, in order."""

    def __init__(self) -> None:
        self._work: list[Callable[[], None]] = []

    def add(self, work: Callable[[], None]) -> None:
        self._work.append(work)

    def run(self) -> None:
        work, self._work = self._work, []
        for w in work:
            w()
