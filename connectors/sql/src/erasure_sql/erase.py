"""Deleting and anonymising rows, children before parents, in bounded transactions."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from erasure import ItemOutcome, ItemStatus, PermanentError

from .anonymise import pending_changes
from .grouping import Group
from .mapping import Edge, Mapping, TableModel, is_blocking
from .overlap import Overlapped
from .queries import at_places, pk_filter, tuple_in
from .settings import AnonymiseRule
from .values import Key, chunks

__all__ = ["EraseMixin", "NotWhereFound", "Tx"]


_SPLIT_AT = 2000  # rows: a chunk this large is deleted in two statements (see _delete_at_places)


class NotWhereFound(Exception):  # noqa: N818 - a signal inside the connector, not an error
    """A row was not where find saw it: the call's transaction is rolled back and redone."""


class Tx:
    """A connection whose transaction is committed before it holds more than ``limit`` rows.

    A batch of a few thousand rows commits once (children and parents together); larger
    calls commit every ``limit`` rows, always between chunks. Outcomes of a table done are
    built while the next statement runs (:meth:`later`); :meth:`finish` commits and
    returns them all.
    """

    def __init__(self, db: Overlapped, limit: int) -> None:
        self.db = db
        self.conn = db.conn
        self.limit = limit
        self.pending = 0
        self.outcomes: list[ItemOutcome] = []
        self._later: list[Callable[[], list[ItemOutcome]]] = []

    def budget(self, rows: int) -> None:
        """Account for ``rows`` more rows, committing first if they would not fit."""
        if self.pending and self.pending + rows > self.limit:
            self.db.run(self.conn.commit)
            self.pending = 0
        self.pending += rows

    def later(self, make: Callable[[], list[ItemOutcome]]) -> None:
        """Build these outcomes during the next statement (or at the end)."""
        if not self._later:
            self.db.also(self._settle)
        self._later.append(make)

    def _settle(self) -> None:
        for make in self._later:
            self.outcomes.extend(make())
        self._later.clear()

    def finish(self) -> list[ItemOutcome]:
        """Commit, and return every outcome."""
        self.db.run(self.conn.commit)
        self._settle()
        return self.outcomes


class EraseMixin:
    """Row deletion and anonymisation of the sql connector (mixed into SqlConnector)."""

    _engine: sa.Engine
    _limit: int
    _dialect: str
    _hash_key: bytes | None

    def _tid_cache(self, tm: TableModel) -> dict[Key, str] | None:
        raise NotImplementedError

    def _chunk_size(self, tm: TableModel) -> int:
        return max(1, (self._limit - 1) // len(tm.pk))

    @staticmethod
    def _referencing(m: Mapping, tm: TableModel) -> tuple[list[Edge], list[Edge]]:
        """Links into ``tm``: (those that block a delete, kept tables a delete would cascade to)."""
        blocking = list(m.blockers.get(tm.name, ()))
        cascading = []
        for e in m.children(tm.name) + m.shadowed.get(tm.name, []):
            if e.declared or e.child == tm.name:
                continue
            kept = m.tables[e.child].action != "delete"
            if is_blocking(e.ondelete):
                blocking.append(e)
            elif kept and (e.ondelete or "").upper() != "SET NULL":
                cascading.append(e)
        return blocking, cascading

    def _blocked_by(
        self, conn: sa.Connection, m: Mapping, tm: TableModel, keys: Sequence[Key],
        edges: Sequence[Edge],
    ) -> Edge | None:
        """The first link whose table still has rows referencing the rows ``keys``."""
        for e in edges:
            if e.parent_cols == tm.pk:
                values = list(keys)
            else:
                pcols = [tm.col(c) for c in e.parent_cols]
                stmt = sa.select(*pcols).where(pk_filter(tm.table, tm.pk, keys, self._dialect))
                values = [tuple(r) for r in conn.execute(stmt) if None not in tuple(r)]
            child = m.all_tables[e.child]
            ccols = [child.c[c] for c in e.child_cols]
            for chunk in chunks(values, (self._limit - 1) // len(ccols)):
                stmt = sa.select(sa.literal(1)).select_from(child).where(
                    tuple_in(ccols, chunk)).limit(1)
                if conn.execute(stmt).first() is not None:
                    return e
        return None

    @staticmethod
    def _blocked_error(m: Mapping, e: Edge) -> PermanentError:
        how = "is not in the mapping" if e.child not in m.tables else (
            f"is mapped with action {m.tables[e.child].action}")
        return PermanentError(
            f"cannot delete rows of table {e.parent}: rows of table {e.child} reference them "
            f"through a foreign key ({', '.join(e.child_cols)}; ON DELETE "
            f"{e.ondelete or 'NO ACTION'}) and table {e.child} {how}; map {e.child} "
            f"or set {e.parent}'s action to anonymise"
        )

    def _precheck_blockers(
        self, conn: sa.Connection, m: Mapping, grouped: dict[str, Group]
    ) -> None:
        """Refuse before changing anything when an unmapped table would block a delete."""
        for tname, group in grouped.items():
            tm = m.tables[tname]
            edges = m.blockers.get(tname, [])
            if tm.action != "delete" or not edges:
                continue
            for chunk in chunks(group.keys(), self._chunk_size(tm)):
                blocker = self._blocked_by(conn, m, tm, chunk, edges)
                if blocker is not None:
                    raise self._blocked_error(m, blocker)

    def _delete_table(
        self, tx: Tx, m: Mapping, tm: TableModel, group: Group, places_only: bool = False
    ) -> None:
        """Delete rows by primary key, in chunks, in the transaction of ``tx``.

        The outcomes are left to ``tx`` to build (see :meth:`Tx.later`). ``places_only``:
        every row must be where find saw it (PostgreSQL), deleted without savepoints; if one
        is not, :class:`NotWhereFound` tells the caller to roll back and call again without.
        """
        conn = tx.conn
        blocking, cascading = self._referencing(m, tm)
        if places_only:
            tids = self._tid_cache(tm)
            for chunk in chunks(group.keys(), self._chunk_size(tm)):
                tx.budget(len(chunk))
                blocker = self._blocked_by(conn, m, tm, chunk, cascading) if cascading else None
                if blocker is not None:
                    raise self._blocked_error(m, blocker)
                if tids is None:
                    raise NotWhereFound
                try:
                    self._delete_at_places(tx.db, tm, chunk, tids)
                except sa_exc.IntegrityError:
                    raise NotWhereFound from None  # the call again, in savepoints, names it
            tx.later(functools.partial(_outcomes, group, set()))
            return
        # SQLite savepoints are unreliable through pysqlite: check blocking links up front
        # there; elsewhere a savepoint lets us name the blocking table only on failure, and
        # learn which rows were already gone only when some were (a rare, repeated run).
        savepoint = self._dialect != "sqlite"
        precheck = cascading + (blocking if self._dialect == "sqlite" else [])
        already: set[Key] = set()  # rows that were gone before this call
        tids = self._tid_cache(tm) if savepoint else None
        for chunk in chunks(group.keys(), self._chunk_size(tm)):
            tx.budget(len(chunk))
            # A cascade into a kept table would destroy rows the law says to keep.
            blocker = self._blocked_by(conn, m, tm, chunk, precheck) if precheck else None
            if blocker is not None:
                raise self._blocked_error(m, blocker)
            nested = conn.begin_nested() if savepoint else None
            try:
                if tids is not None and nested is not None:
                    if self._delete_by_tid(tx.db, tm, chunk, tids):
                        nested.commit()
                        continue
                    nested.rollback()
                    nested = conn.begin_nested()
                gone_before, nested = self._delete_by_key(conn, tm, chunk, nested)
                already.update(gone_before)
                if nested is not None:
                    nested.commit()
            except sa_exc.IntegrityError:
                # Name the table that blocks (names only: the driver's message holds values).
                blocker = None
                if nested is not None:
                    nested.rollback()
                    blocker = self._blocked_by(conn, m, tm, chunk, blocking)
                if blocker is not None:
                    raise self._blocked_error(m, blocker) from None
                raise PermanentError(
                    f"delete rows of {tm.name}: integrity constraint violated") from None
        tx.later(functools.partial(_outcomes, group, already))

    def _delete_by_key(
        self, conn: sa.Connection, tm: TableModel, chunk: Sequence[Key],
        nested: sa.NestedTransaction | None,
    ) -> tuple[set[Key], sa.NestedTransaction | None]:
        """Delete the rows of ``chunk`` by primary key; return the keys already gone.

        In a savepoint (``nested``) the rows are just counted, and only when some but not all
        were gone is the delete undone and redone learning which; the savepoint in use is
        returned with the keys.
        """
        where = pk_filter(tm.table, tm.pk, chunk, self._dialect)
        stmt = sa.delete(tm.table).where(where)
        if nested is not None:
            count = conn.execute(stmt).rowcount
            if count == len(chunk):
                return set(), nested
            if count == 0:
                return set(chunk), nested
            nested.rollback()
            nested = conn.begin_nested()
        if self._engine.dialect.delete_returning:
            rows = conn.execute(stmt.returning(*tm.pk_cols())).all()
        else:
            rows = conn.execute(sa.select(*tm.pk_cols()).where(where).with_for_update()).all()
            conn.execute(stmt)
        return set(chunk).difference(map(tuple, rows)), nested

    def _delete_by_tid(
        self, db: Overlapped, tm: TableModel, chunk: Sequence[Key], tids: dict[Key, str]
    ) -> bool:
        """Delete the rows of ``chunk`` where find saw them (ctid); True if all of them went.

        A ctid is only where a row was: an update moves it, and vacuum may give the place to
        another row. So each place must also hold one of the keys (checked as a filter:
        ``COALESCE(pk = ANY(:keys), false)`` is no index condition, so the planner stays on
        the ctids, and unlike ``IS TRUE`` it is not estimated key by key, which took a
        millisecond to plan for a few thousand keys): no other row is ever touched, and when
        fewer rows than keys go, the caller undoes this and deletes by key instead. Each place
        holds at most one row, so as many rows as keys means exactly those keys.
        """
        stmt = self._at_places(tm, chunk, tids)
        return stmt is not None and db.rowcount(stmt) == len(chunk)

    def _delete_at_places(
        self, db: Overlapped, tm: TableModel, chunk: Sequence[Key], tids: dict[Key, str]
    ) -> None:
        """:meth:`_delete_by_tid` for a whole chunk or :class:`NotWhereFound`.

        A large chunk goes in two statements, the second built while the first runs.
        """
        # The first statement waits for its own build, the second is built while the first
        # runs: a first third starts the server sooner.
        cut = len(chunk) // 3
        parts = [chunk] if len(chunk) < _SPLIT_AT else [chunk[:cut], chunk[cut:]]
        stmt = self._at_places(tm, parts[0], tids)
        for i, part in enumerate(parts):
            if stmt is None:
                raise NotWhereFound
            built: list[sa.Delete | None] = []
            if i + 1 < len(parts):
                following = parts[i + 1]
                db.also(functools.partial(_append, built, self._at_places, tm, following, tids))
            if db.rowcount(stmt) != len(part):
                raise NotWhereFound
            stmt = built[0] if built else None

    def _at_places(
        self, tm: TableModel, chunk: Sequence[Key], tids: dict[Key, str]
    ) -> sa.Delete | None:
        """The DELETE of :meth:`_delete_by_tid`, or None when a key's place is not known."""
        maybe = [tids.pop(pk, None) for pk in chunk]
        places = [p for p in maybe if p is not None]
        if len(places) < len(maybe):
            return None
        ours = sa.func.coalesce(pk_filter(tm.table, tm.pk, chunk, self._dialect), sa.false())
        return sa.delete(tm.table).where(at_places(places), ours)

    def _anonymise_table(
        self, tx: Tx, tm: TableModel, group: Group, rules: dict[str, AnonymiseRule],
    ) -> list[ItemOutcome]:
        """Apply ``rules`` to rows not yet anonymised, in the transaction of ``tx``."""
        conn = tx.conn
        unchanged: set[Key] = set()
        for chunk in chunks(group.keys(), self._chunk_size(tm)):
            changed: set[Key] = set()
            if rules:
                tx.budget(len(chunk))
                cols = tm.pk_cols() + [tm.col(c) for c in rules if c not in tm.pk]
                where = pk_filter(tm.table, tm.pk, chunk, self._dialect)
                stmt = sa.select(*cols).where(where)
                if self._dialect != "sqlite":
                    stmt = stmt.with_for_update()
                batches: dict[tuple[str, ...], list[dict[str, Any]]] = {}
                for row in conn.execute(stmt).mappings():
                    pk = tuple(row[c] for c in tm.pk)
                    changes = pending_changes(rules, row, pk, self._hash_key)
                    if not changes:
                        continue
                    changed.add(pk)
                    params = {f"k{i}": v for i, v in enumerate(pk)}
                    params.update({f"v{i}": changes[c] for i, c in enumerate(sorted(changes))})
                    batches.setdefault(tuple(sorted(changes)), []).append(params)
                for colset, params_list in batches.items():
                    upd = (
                        sa.update(tm.table)
                        .where(*(tm.col(c) == sa.bindparam(f"k{i}")
                                 for i, c in enumerate(tm.pk)))
                        .values({c: sa.bindparam(f"v{i}") for i, c in enumerate(colset)})
                    )
                    conn.execute(upd, params_list)
            unchanged.update(pk for pk in chunk if pk not in changed)
        return _outcomes(group, unchanged)


def _append(to: list[Any], make: Callable[..., Any], *args: Any) -> None:
    to.append(make(*args))


def _outcomes(group: Group, already: set[Key]) -> list[ItemOutcome]:
    """DONE for each finding, ALREADY_DONE for those whose row needed no change."""
    done = ItemStatus.DONE
    if not already:
        return [ItemOutcome(f, done) for f in group.findings]
    return [ItemOutcome(f, ItemStatus.ALREADY_DONE if pk in already else done)
            for pk, f in zip(group.pks, group.findings, strict=True)]

