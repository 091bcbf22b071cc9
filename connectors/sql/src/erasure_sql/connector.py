"""The ``sql`` connector: find, export, delete, anonymise and restrict rows with SQLAlchemy Core."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from erasure import (
    Capability,
    CapabilityNotSupported,
    Connector,
    Finding,
    Identifier,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    PermanentError,
    Record,
    Subject,
)
from sqlalchemy import exc as sa_exc

from .anonymise import pending_changes
from .dberrors import db_errors
from .mapping import Edge, Mapping, TableModel, build_mapping, is_blocking
from .queries import param_limit, pk_filter, tuple_in
from .settings import AnonymiseRule, SqlSettings
from .values import (
    NO_MATCH,
    chunks,
    coerce,
    decode_ref,
    encode_ref,
    json_safe,
    normalise_db_value,
    python_type,
)

__all__ = ["SqlConnector"]

_Hit = tuple[dict[Identifier, None], dict[str, None]]  # matched identifiers, matched fields
Key = tuple[Any, ...]


class SqlConnector(Connector):
    """Personal data in SQL tables (PostgreSQL, MariaDB/MySQL, SQLite), mapped in config.

    Rows are found by exact identifier equality (emails case-insensitively) and through
    foreign keys; erasure deletes children before parents, anonymises rows the law says to
    keep, and reports retained tables. See the package README for the config format.
    """

    name = "sql"
    version = "0.1.0"
    Settings = SqlSettings
    capabilities = frozenset(
        {Capability.FIND, Capability.EXPORT, Capability.DELETE, Capability.ANONYMISE,
         Capability.RESTRICT}
    )
    settings: SqlSettings

    def __init__(self, system: str, settings: SqlSettings) -> None:
        super().__init__(system, settings)
        try:
            url = sa.make_url(settings.url.get_secret_value())
            self._engine = sa.create_engine(url, hide_parameters=True, pool_pre_ping=True)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError):
            raise PermanentError(f"system {system}: invalid database URL or driver") from None
        if self._engine.dialect.name == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_foreign_keys)
        self._limit = param_limit(self._engine.dialect.name, settings.max_params)
        self._hash_key = (
            settings.hash_key.get_secret_value().encode() if settings.hash_key else None
        )
        self._mapping: Mapping | None = None
        self._lock = threading.Lock()

    # setup ---------------------------------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for tests and tools)."""
        return self._engine

    def mapping(self) -> Mapping:
        """The mapping validated against the reflected schema (reflected once, on first use)."""
        with self._lock:
            if self._mapping is None:
                meta = sa.MetaData(schema=self.settings.db_schema)
                with db_errors("reflect schema"):
                    meta.reflect(self._engine, schema=self.settings.db_schema)
                self._mapping = build_mapping(self.settings, meta)
            return self._mapping

    def check(self) -> None:
        self.mapping()
        with db_errors("check"), self._engine.connect() as conn:
            conn.execute(sa.select(sa.literal(1)))

    def close(self) -> None:
        self._engine.dispose()

    def discover(self) -> str:
        from .discover import discover

        return discover(self._engine, self.system, self.settings.db_schema)

    # find ----------------------------------------------------------------------------

    def _columns(self, m: Mapping, tm: TableModel) -> list[sa.Column[Any]]:
        names = dict.fromkeys(tm.pk)
        names.update(dict.fromkeys(c for _t, c in tm.identifiers))
        for e in m.edges:
            if e.parent == tm.name:
                names.update(dict.fromkeys(e.parent_cols))
            if e.child == tm.name:
                names.update(dict.fromkeys(e.child_cols))
        return [tm.table.c[n] for n in names]

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        subjects = list(subjects)
        if not subjects:
            return
        m = self.mapping()
        index: dict[tuple[IdentifierType, str], list[tuple[str, Identifier]]] = {}
        for s in subjects:
            for ident in s.identifiers:
                index.setdefault((ident.type, ident.value), []).append((s.key, ident))
        hits: dict[str, dict[Key, dict[str, _Hit]]] = {t: {} for t in m.tables}
        rows: dict[str, dict[Key, Any]] = {t: {} for t in m.tables}
        frontier: dict[str, set[Key]] = {}
        with db_errors("find"), self._engine.connect() as conn:
            for tm in m.tables.values():
                cols = self._columns(m, tm)
                for itype, col in tm.identifiers:
                    new = self._find_direct(conn, tm, cols, itype, col, index, hits, rows)
                    frontier.setdefault(tm.name, set()).update(new)
            while frontier:
                frontier = self._follow(conn, m, frontier, hits, rows)
        out = []
        for tname, tm in m.tables.items():
            for pk, by_subject in hits[tname].items():
                related = self._related(tm, rows[tname][pk])
                ref = encode_ref(tname, pk)
                for skey, (matched, fields) in by_subject.items():
                    out.append(Finding(self.system, skey, ref, tname, tuple(matched),
                                       tuple(fields), related))
        yield from out

    def _find_direct(
        self, conn: sa.Connection, tm: TableModel, cols: list[sa.Column[Any]],
        itype: IdentifierType, col: str,
        index: dict[tuple[IdentifierType, str], list[tuple[str, Identifier]]],
        hits: dict[str, dict[Key, dict[str, _Hit]]], rows: dict[str, dict[Key, Any]],
    ) -> set[Key]:
        column = tm.col(col)
        email = itype is IdentifierType.EMAIL and python_type(column) is str
        wanted: dict[Any, list[tuple[str, Identifier]]] = {}
        for (t, value), owners in index.items():
            if t is not itype:
                continue
            key = value.lower() if email else coerce(column, value)
            if key is not NO_MATCH and key is not None:
                wanted.setdefault(key, []).extend(owners)
        if not wanted:
            return set()
        expr = sa.func.lower(column) if email else column
        new: set[Key] = set()
        for chunk in chunks(list(wanted), self._limit - 1):
            stmt = sa.select(*cols).where(expr.in_(chunk))
            for row in conn.execute(stmt).mappings():
                raw = row[col]
                # Exact re-check in Python: collations may equate values that are not equal.
                owners = wanted.get(raw.lower() if email and isinstance(raw, str) else raw)
                if not owners:
                    continue
                pk = tuple(row[c] for c in tm.pk)
                rows[tm.name][pk] = row
                for skey, ident in owners:
                    matched, fields = hits[tm.name].setdefault(pk, {}).setdefault(skey, ({}, {}))
                    matched[ident] = None
                    fields[col] = None
                new.add(pk)
        return new

    def _follow(
        self, conn: sa.Connection, m: Mapping, frontier: dict[str, set[Key]],
        hits: dict[str, dict[Key, dict[str, _Hit]]], rows: dict[str, dict[Key, Any]],
    ) -> dict[str, set[Key]]:
        """Find child rows of the rows in ``frontier``; return the rows new or changed."""
        nxt: dict[str, set[Key]] = {}
        for parent, pks in frontier.items():
            for e in m.children(parent):
                child = m.tables[e.child]
                link: dict[Key, dict[str, dict[Identifier, None]]] = {}
                for pk in pks:
                    row = rows[parent][pk]
                    keyv = tuple(row[c] for c in e.parent_cols)
                    if any(v is None for v in keyv):
                        continue
                    target = link.setdefault(keyv, {})
                    for skey, (matched, _f) in hits[parent][pk].items():
                        target.setdefault(skey, {}).update(matched)
                if not link:
                    continue
                cols = self._columns(m, child)
                ccols = [child.col(c) for c in e.child_cols]
                for chunk in chunks(list(link), (self._limit - 1) // len(ccols)):
                    stmt = sa.select(*cols).where(tuple_in(ccols, chunk))
                    for row in conn.execute(stmt).mappings():
                        owners = link.get(tuple(row[c] for c in e.child_cols))
                        if not owners:
                            continue
                        pk = tuple(row[c] for c in child.pk)
                        rows[child.name][pk] = row
                        for skey, idents in owners.items():
                            entry = hits[child.name].setdefault(pk, {})
                            matched, fields = entry.setdefault(skey, ({}, {}))
                            before = len(matched)
                            matched.update(idents)
                            fields.update(dict.fromkeys(e.child_cols))
                            if len(matched) != before:
                                nxt.setdefault(child.name, set()).add(pk)
        return nxt

    @staticmethod
    def _related(tm: TableModel, row: Any) -> tuple[Identifier, ...]:
        out: dict[Identifier, None] = {}
        for itype, col in tm.identifiers:
            value = normalise_db_value(itype, row[col])
            if value is not None:
                out[Identifier(itype, value)] = None
        return tuple(out)

    # references ----------------------------------------------------------------------

    def _group(
        self, findings: Sequence[Finding]
    ) -> tuple[dict[str, dict[Key, list[Finding]]], list[Finding]]:
        """Findings by table and primary key; the second list holds foreign references."""
        m = self.mapping()
        grouped: dict[str, dict[Key, list[Finding]]] = {}
        bad: list[Finding] = []
        for f in findings:
            decoded = decode_ref(f.ref)
            tm = m.tables.get(decoded[0]) if decoded else None
            if decoded is None or tm is None or len(decoded[1]) != len(tm.pk):
                bad.append(f)
                continue
            pk = tuple(coerce(c, v) for c, v in zip(tm.pk_cols(), decoded[1], strict=True))
            if any(v is NO_MATCH or v is None for v in pk):
                bad.append(f)
                continue
            grouped.setdefault(tm.name, {}).setdefault(pk, []).append(f)
        return grouped, bad

    def _chunk_size(self, tm: TableModel) -> int:
        return max(1, (self._limit - 1) // len(tm.pk))

    @staticmethod
    def _bad(findings: list[Finding]) -> list[ItemOutcome]:
        return [ItemOutcome(f, ItemStatus.FAILED, error="reference not in this system's mapping")
                for f in findings]

    # export --------------------------------------------------------------------------

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        grouped, _bad = self._group(findings)
        m = self.mapping()
        out = []
        with db_errors("export"), self._engine.connect() as conn:
            for tname, by_pk in grouped.items():
                tm = m.tables[tname]
                for chunk in chunks(list(by_pk), self._chunk_size(tm)):
                    stmt = sa.select(tm.table).where(pk_filter(tm.table, tm.pk, chunk))
                    for row in conn.execute(stmt).mappings():
                        pk = tuple(row[c] for c in tm.pk)
                        data = {k: json_safe(v) for k, v in row.items()}
                        out.extend(Record(f, data) for f in by_pk.get(pk, ()))
        yield from out

    # delete / anonymise --------------------------------------------------------------

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        grouped, bad = self._group(findings)
        m = self.mapping()
        out = self._bad(bad)
        self._precheck_blockers(m, grouped)
        for tname in m.delete_order:
            by_pk = grouped.get(tname)
            if not by_pk:
                continue
            tm = m.tables[tname]
            if tm.action == "retain":
                out.extend(ItemOutcome(f, ItemStatus.RETAINED, error=tm.cfg.reason)
                           for fs in by_pk.values() for f in fs)
            elif tm.action == "anonymise":
                out.extend(self._anonymise_table(tm, by_pk, {**tm.rules, **tm.unlink}))
            else:
                out.extend(self._delete_table(m, tm, by_pk))
        yield from out

    def anonymise(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        grouped, bad = self._group(findings)
        m = self.mapping()
        out = self._bad(bad)
        for tname in m.delete_order:
            by_pk = grouped.get(tname)
            if not by_pk:
                continue
            tm = m.tables[tname]
            if tm.action == "retain":
                out.extend(ItemOutcome(f, ItemStatus.RETAINED, error=tm.cfg.reason)
                           for fs in by_pk.values() for f in fs)
            else:
                out.extend(self._anonymise_table(tm, by_pk, tm.rules))
        yield from out

    def _referencing(self, m: Mapping, tm: TableModel) -> list[Edge]:
        """Links whose remaining rows would block (or be destroyed by) deleting ``tm`` rows."""
        edges = list(m.blockers.get(tm.name, ()))
        for e in m.children(tm.name):
            if e.declared or e.child == tm.name:
                continue
            child = m.tables[e.child]
            kept = child.action != "delete"
            if (kept and (e.ondelete or "").upper() != "SET NULL") or (
                not kept and is_blocking(e.ondelete)
            ):
                edges.append(e)
        return edges

    def _blocked_by(
        self, conn: sa.Connection, m: Mapping, tm: TableModel, keys: Sequence[Key],
        edges: Sequence[Edge],
    ) -> Edge | None:
        for e in edges:
            if e.parent_cols == tm.pk:
                values = list(keys)
            else:
                pcols = [tm.col(c) for c in e.parent_cols]
                stmt = sa.select(*pcols).where(pk_filter(tm.table, tm.pk, keys))
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

    def _precheck_blockers(self, m: Mapping, grouped: dict[str, dict[Key, list[Finding]]]) -> None:
        """Refuse before changing anything when an unmapped table would block a delete."""
        with db_errors("delete (check foreign keys)"), self._engine.connect() as conn:
            for tname, by_pk in grouped.items():
                tm = m.tables[tname]
                edges = m.blockers.get(tname, [])
                if tm.action != "delete" or not edges:
                    continue
                for chunk in chunks(list(by_pk), self._chunk_size(tm)):
                    blocker = self._blocked_by(conn, m, tm, chunk, edges)
                    if blocker is not None:
                        raise self._blocked_error(m, blocker)

    def _delete_table(
        self, m: Mapping, tm: TableModel, by_pk: dict[Key, list[Finding]]
    ) -> list[ItemOutcome]:
        out = []
        edges = self._referencing(m, tm)
        returning = self._engine.dialect.delete_returning
        for chunk in chunks(list(by_pk), self._chunk_size(tm)):
            where = pk_filter(tm.table, tm.pk, chunk)
            with db_errors(f"delete from {tm.name}"), self._engine.begin() as conn:
                blocker = self._blocked_by(conn, m, tm, chunk, edges) if edges else None
                if blocker is not None:
                    raise self._blocked_error(m, blocker)
                stmt = sa.delete(tm.table).where(where)
                if returning:
                    gone = {tuple(r) for r in conn.execute(stmt.returning(*tm.pk_cols()))}
                else:
                    found = conn.execute(sa.select(*tm.pk_cols()).where(where).with_for_update())
                    gone = {tuple(r) for r in found}
                    conn.execute(stmt)
            for pk in chunk:
                status = ItemStatus.DONE if pk in gone else ItemStatus.ALREADY_DONE
                out.extend(ItemOutcome(f, status) for f in by_pk[pk])
        return out

    def _anonymise_table(
        self, tm: TableModel, by_pk: dict[Key, list[Finding]], rules: dict[str, AnonymiseRule]
    ) -> list[ItemOutcome]:
        out = []
        for chunk in chunks(list(by_pk), self._chunk_size(tm)):
            changed: set[Key] = set()
            if rules:
                with db_errors(f"anonymise {tm.name}"), self._engine.begin() as conn:
                    cols = tm.pk_cols() + [tm.col(c) for c in rules if c not in tm.pk]
                    stmt = sa.select(*cols).where(pk_filter(tm.table, tm.pk, chunk))
                    if self._engine.dialect.name != "sqlite":
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
            for pk in chunk:
                status = ItemStatus.DONE if pk in changed else ItemStatus.ALREADY_DONE
                out.extend(ItemOutcome(f, status) for f in by_pk[pk])
        return out

    # restrict ------------------------------------------------------------------------

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        m = self.mapping()
        if not any(t.cfg.restrict_column for t in m.tables.values()):
            raise CapabilityNotSupported(f"system {self.system}: no table has a restrict_column")
        grouped, bad = self._group(findings)
        out = self._bad(bad)
        for tname, by_pk in grouped.items():
            tm = m.tables[tname]
            flag_name = tm.cfg.restrict_column
            if not flag_name:
                out.extend(ItemOutcome(f, ItemStatus.NOT_SUPPORTED,
                                       error=f"table {tname} has no restrict_column")
                           for fs in by_pk.values() for f in fs)
                continue
            flag = tm.col(flag_name)
            for chunk in chunks(list(by_pk), self._chunk_size(tm)):
                with db_errors(f"restrict {tname}"), self._engine.begin() as conn:
                    stmt = sa.select(*tm.pk_cols(), flag).where(pk_filter(tm.table, tm.pk, chunk))
                    state = {tuple(r[:-1]): bool(r[-1]) for r in conn.execute(stmt)}
                    to_set = [pk for pk, done in state.items() if not done]
                    if to_set:
                        conn.execute(sa.update(tm.table)
                                     .where(pk_filter(tm.table, tm.pk, to_set))
                                     .values({flag_name: True}))
                for pk in chunk:
                    if pk not in state:
                        outcome = (ItemStatus.FAILED, "row not found")
                    elif state[pk]:
                        outcome = (ItemStatus.ALREADY_DONE, None)
                    else:
                        outcome = (ItemStatus.DONE, None)
                    out.extend(ItemOutcome(f, outcome[0], error=outcome[1]) for f in by_pk[pk])
        yield from out


def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
