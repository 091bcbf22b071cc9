"""The ``sql`` connector: find, export, delete, anonymise and restrict rows with SQLAlchemy Core."""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import itertools
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from erasure import (
    BlockedError,
    Capability,
    CapabilityNotSupported,
    Connector,
    Finding,
    Identifier,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    Record,
    Subject,
)

from .dberrors import db_errors
from .deepscan import DeepScan, residue_findings, strong_values
from .erase import EraseMixin, NotWhereFound, Tx
from .finding import SHARED_FIELD, FindMixin
from .forms import python_lower
from .grouping import Group, group_findings, int_ref_heads
from .legalhold import held_subjects, split_held
from .mapping import Mapping, TableModel, build_mapping
from .overlap import Overlapped
from .queries import ArrayLookup, param_limit, pk_filter
from .residue import (
    KeyHolder,
    key_holders,
    key_residue,
    residue_finding,
    still_there,
    unmapped_links,
)
from .retention import RetentionMixin
from .rights import RightsMixin
from .settings import AnonymiseRule, SqlSettings
from .shared import export_only_outcomes, kept_outcomes, split_shared, still_used
from .timeouts import apply_call_deadlines
from .values import Key, chunks, json_safe

__all__ = ["SqlConnector"]


class SqlConnector(FindMixin, EraseMixin, RetentionMixin, RightsMixin, Connector):
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
         Capability.RESTRICT, Capability.RETENTION, Capability.LOOKUP, Capability.RECTIFY,
         Capability.OBJECT}
    )
    settings: SqlSettings

    def __init__(self, system: str, settings: SqlSettings) -> None:
        super().__init__(system, settings)
        try:
            url = sa.make_url(settings.url.get_secret_value())
            self._engine = sa.create_engine(url, hide_parameters=True,
                                            connect_args=_connect_args(url))
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError):
            raise BlockedError(f"system {system}: invalid database URL or driver",
                               system_wide=True) from None
        if self._engine.dialect.name == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_setup)
        apply_call_deadlines(self._engine)
        self._limit = param_limit(self._engine.dialect.name, settings.max_params)
        self._hash_key = (
            settings.hash_key.get_secret_value().encode() if settings.hash_key else None
        )
        self._dialect = self._engine.dialect.name
        self._mapping: Mapping | None = None
        self._mapping_error: BlockedError | None = None
        self._deep: DeepScan | None = None
        self._holders: dict[str, list[KeyHolder]] | None = None  # see _key_holders
        self._lock = threading.Lock()
        self._heads: dict[str, str] | None = None
        self._threads: dict[str, cf.ThreadPoolExecutor] = {}  # see _thread
        self._tids: dict[str, dict[Key, str]] = {}  # see FindMixin._tid_cache
        # table -> refs handed out by find -> typed primary key: spares decoding them again.
        self._refs: dict[str, dict[str, Key]] = {}
        self._lookups: dict[tuple[Any, ...], ArrayLookup] = {}  # see FindMixin._rows_where

    # setup ---------------------------------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for tests and tools)."""
        return self._engine

    def mapping(self) -> Mapping:
        """The mapping validated against the reflected schema (reflected once, on first use)."""
        with self._lock:
            if self._mapping_error is not None:
                # Kept until the config changes (a new instance): the schema is not reflected
                # again for every call of a batch that is split or retried.
                raise self._mapping_error
            if self._mapping is None:
                meta = sa.MetaData(schema=self.settings.db_schema)
                with db_errors("reflect schema"), warnings.catch_warnings():
                    # SQLite: "skipped ... expression-based index" (lower(email), which
                    # erasure_sql.indexes reads itself)
                    warnings.simplefilter("ignore", sa_exc.SAWarning)
                    meta.reflect(self._engine, schema=self.settings.db_schema)
                try:
                    self._mapping = build_mapping(self.settings, meta)
                except BlockedError as exc:
                    self._mapping_error = exc
                    raise
            return self._mapping

    def check(self) -> None:
        self.mapping()
        with db_errors("check"), self._engine.connect() as conn:
            conn.execute(sa.select(sa.literal(1)))

    def close(self) -> None:
        with self._lock:
            threads, self._threads = list(self._threads.values()), {}
        for thread in threads:
            thread.shutdown(wait=True)
        self._engine.dispose()

    def _worker(self) -> cf.Executor | None:
        """The thread statements run on while findings or outcomes are built (see
        :mod:`erasure_sql.overlap`)."""
        return self._thread("statements")

    def _thread(self, purpose: str) -> cf.Executor | None:
        """A thread of its own for ``purpose`` (statements, or the deep scan beside find),
        made on first use; none for SQLite, whose connections keep to one thread."""
        if self._dialect == "sqlite":
            return None
        with self._lock:
            if purpose not in self._threads:
                self._threads[purpose] = cf.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"erasure-sql-{purpose}-{self.system}")
            return self._threads[purpose]

    # verification beyond the mapping ----------------------------------------------------

    def deep_scan(self) -> DeepScan:
        """The scan of every readable table's text columns (built once)."""
        m = self.mapping()
        with self._lock:
            if self._deep is None:
                self._deep = DeepScan(self._engine, self.settings, m, self._limit)
            return self._deep

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        """Rows of the mapping; while the host verifies an erasure, also unmapped residue
        (see :mod:`erasure_sql.deepscan` and ``erasure.connector.UNMAPPED_RESIDUE``)."""
        subjects = list(subjects)
        if not (self.settings.deep_scan.after_erasure and _verifying()):
            return super().find(subjects)
        values = list(strong_values(subjects))
        scan = self.deep_scan()

        def deep() -> dict[str, dict[str, int]]:
            with db_errors("deep scan"):
                return scan.scan(values)

        side = self._thread("scan")
        if side is None:
            found, hits = super().find(subjects), deep()
        else:
            # The scan reads other tables on a connection of its own: on a server both run
            # at once, and verification waits for the longer, not for the two in turn.
            # (The copied context carries the call's deadline to the scan's statements.)
            pending = side.submit(contextvars.copy_context().run, deep)
            try:
                found = super().find(subjects)
            except BaseException:
                cf.wait([pending])  # find's error is the one to report
                raise
            hits = pending.result()
        return itertools.chain(found, residue_findings(self.system, subjects, hits))

    def lookup(self, findings: Sequence[Finding]) -> Iterator[Finding]:
        """After an erasure: the rows of ``findings`` that still exist, and *unmapped
        residue* where rows still hold the keys of rows it deleted (see
        :mod:`erasure_sql.residue`) or, for review, where a table outside the mapping holds a
        name the deleted rows carried (a name is weak evidence: another person may share it).
        """
        findings, _others = self._not_owned(findings)  # someone else's rows: kept
        grouped, _bad = self._group(findings)
        m = self.mapping()
        matched: dict[str, tuple[Identifier, ...]] = {}
        names: dict[str, set[str]] = {}
        for f in findings:
            matched.setdefault(f.subject, f.matched)
            for ident in f.related:
                if ident.type is IdentifierType.NAME:
                    names.setdefault(ident.value.lower(), set()).add(f.subject)
        with db_errors("verify keys"), self._engine.connect() as conn:
            left, gone = still_there(conn, m, grouped, self._dialect, self._limit)
            places = key_residue(conn, self._key_holders(), gone, self.deep_scan().own_schema(),
                                 self._dialect, self._limit)
        out = list(left)
        for (subject, place), _i in sorted(places.items()):
            out.append(residue_finding(self.system, subject, place, matched.get(subject, ())))
        if names:
            with db_errors("verify names"):
                hits = self.deep_scan().scan(list(names), unmapped_only=True)
            for place, counts in sorted(hits.items()):
                for subject in sorted({s for v in counts for s in names.get(v, ())}):
                    out.append(residue_finding(self.system, subject,
                                               f"{place} (a name: review)",
                                               matched.get(subject, ())))
        return iter(out)

    def _key_holders(self) -> dict[str, list[KeyHolder]]:
        m = self.mapping()
        with self._lock:
            if self._holders is None:
                self._holders = key_holders(m)
            return self._holders

    def deep_check(self, subjects: Sequence[Subject]) -> list[str]:
        """Places outside the mapping holding strong identifiers of ``subjects`` or, with
        none, of people the mapping holds (up to 1000 values per identifier column), and
        then also the columns that hold keys of mapped rows without a link of the mapping
        (``unmapped link: ...``: an erasure would leave their rows holding the keys)."""
        scan = self.deep_scan()
        with db_errors("deep check"):
            if subjects:
                values = list(strong_values(subjects))
                whose = "the given identifiers"
            else:
                values = self._mapped_values(1000)
                whose = f"{len(values)} identifiers sampled from the mapping"
            hits = scan.scan(values)
        lines = [f"unmapped residue: {place}: {len(counts)} of {whose} in "
                 f"{sum(counts.values())} rows" for place, counts in sorted(hits.items())]
        if not subjects:  # the mapping's own check: columns that would keep a person's keys
            lines += unmapped_links(self.mapping(), self._key_holders(), scan.own_schema())
        return lines

    def _mapped_values(self, per_column: int) -> list[str]:
        m = self.mapping()
        values: set[str] = set()
        with self._engine.connect() as conn:
            for tm in m.tables.values():
                for itype, name in tm.identifiers:
                    if itype.value not in ("email", "phone"):
                        continue
                    col = tm.col(name)
                    stmt = sa.select(col).where(col.is_not(None)).distinct().limit(per_column)
                    values.update(v.strip().lower() for (v,) in conn.execute(stmt)
                                  if isinstance(v, str) and v.strip())
        return sorted(values)

    def advice(self) -> list[str]:
        """Lookups of find that no index serves, each with the CREATE INDEX that would
        (see :mod:`erasure_sql.indexes`), and tables whose rows an anonymise request would
        refuse to anonymise (personal columns without a rule)."""
        from .indexes import unserved

        m = self.mapping()
        with db_errors("check indexes"):
            notes = unserved(self._engine, m)
        # Not a failure under a policy that deletes; an anonymise request would be refused.
        notes += [f"anonymising its rows would be refused: personal columns without a rule: "
                  f"systems.{self.system}.tables.{t}.anonymise: {', '.join(tm.unruled)}"
                  for t, tm in m.tables.items()
                  if tm.unruled and tm.action != "retain" and t not in m.export_only]
        return notes

    def discover(self) -> str:
        from .discover import discover

        return discover(self._engine, self.system, self.settings)

    # references ----------------------------------------------------------------------

    def _group(
        self, findings: Sequence[Finding], take: bool = False
    ) -> tuple[dict[str, Group], list[Finding]]:
        """Findings by table; the second list holds references not in this mapping.

        ``take``: the rows are being erased, so find's memo of their refs is let go.
        """
        m = self.mapping()
        if self._heads is None:
            self._heads = int_ref_heads(m)
        return group_findings(m, self._heads, self._refs, findings, take)

    @staticmethod
    def _bad(findings: list[Finding]) -> list[ItemOutcome]:
        return [ItemOutcome(f, ItemStatus.FAILED, error="reference not in this system's mapping")
                for f in findings]

    # export --------------------------------------------------------------------------

    def _not_owned(self, findings: Sequence[Finding]) -> tuple[Sequence[Finding], list[Finding]]:
        """(the subjects' own rows, rows reached only through a link that is not their
        owner's: someone else's, see :data:`~erasure_sql.finding.SHARED_FIELD`)."""
        if all(e.owner for e in self.mapping().edges):
            return findings, []
        own: list[Finding] = []
        others: list[Finding] = []
        for f in findings:
            (others if f.fields and f.fields[-1] == SHARED_FIELD else own).append(f)
        return own, others

    @staticmethod
    def _shared(findings: list[Finding]) -> list[ItemOutcome]:
        return [ItemOutcome(f, ItemStatus.RETAINED,
                            error=f"shared: reached through {', '.join(f.fields[:-1])}, not "
                                  f"the link to the owner of {f.kind} rows; not the subject's")
                for f in findings]

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        findings, _others = self._not_owned(findings)  # never in the subject's package
        grouped, _bad = self._group(findings)
        m = self.mapping()
        out: list[Record] = []
        with db_errors("export"), self._engine.connect() as conn:
            for tname, group in grouped.items():
                tm = m.tables[tname]
                by_pk = group.by_pk()
                for chunk in chunks(list(by_pk), self._chunk_size(tm)):
                    where = pk_filter(tm.table, tm.pk, chunk, self._dialect)
                    stmt = sa.select(tm.table).where(where)
                    for row in conn.execute(stmt).mappings():
                        pk = tuple(row[c] for c in tm.pk)
                        data = {k: json_safe(v) for k, v in row.items()}
                        out.extend(Record(f, data) for f in by_pk.get(pk, ()))
        yield from out

    # delete / anonymise --------------------------------------------------------------

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter(self._erase(findings, anonymise_only=False))

    def anonymise(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter(self._erase(findings, anonymise_only=True))

    def _erase(self, findings: Sequence[Finding], anonymise_only: bool) -> list[ItemOutcome]:
        """Delete (or only anonymise) rows table by table, children before parents."""
        findings, others = self._not_owned(findings)
        m = self.mapping()
        if anonymise_only:
            self._refuse_unruled(m, findings)
        grouped, bad = self._group(findings, take=True)
        out = self._bad(bad) + self._shared(others)
        if not grouped:
            return out
        # Where the whole call fits one transaction, PostgreSQL rows are deleted where find
        # saw them without a savepoint per statement; should one have moved, all is rolled
        # back and done again the careful way.
        places_only = (not anonymise_only and self._dialect == "postgresql"
                       and sum(len(g.pks) for g in grouped.values()) <= self._limit)
        with db_errors("delete"), self._engine.connect() as conn:
            on_hold = held_subjects(conn, m, grouped, self._dialect, self._chunk_size)
            if on_hold:
                grouped, kept = split_held(grouped, on_hold)
                out.extend(kept)
                if not grouped:
                    return out
            db = Overlapped(conn, self._worker())
            held = still_used(conn, m, grouped, self._dialect, self._limit, not anonymise_only)
            if not anonymise_only:  # rows kept as shared are not deleted: not checked
                self._precheck_blockers(conn, m, {
                    t: split_shared(g, held[t])[0] if held.get(t) else g
                    for t, g in grouped.items()})
            try:
                out.extend(self._erase_tables(db, m, grouped, anonymise_only, places_only,
                                              held))
            except NotWhereFound:
                conn.rollback()
                db.meanwhile = None  # outcomes of the attempt rolled back
                out.extend(self._erase_tables(db, m, grouped, anonymise_only, False, held))
        return out

    def _refuse_unruled(self, m: Mapping, findings: Sequence[Finding]) -> None:
        """Anonymising rows whose personal columns have no rule would change nothing and
        say done: refused before anything changes, naming where the rules go."""
        kinds = {f.kind for f in findings}
        missing = [f"systems.{self.system}.tables.{t}.anonymise: {', '.join(tm.unruled)}"
                   for t, tm in m.tables.items()
                   if t in kinds and tm.unruled and tm.action != "retain"
                   and t not in m.export_only]
        if missing:  # the configuration's to fix: the task waits for `erasure retry`
            raise BlockedError(
                "cannot anonymise: personal columns without a rule (name one, or "
                '"keep:<reason>"; `erasure discover` proposes them): ' + "; ".join(missing))

    def _erase_tables(
        self, db: Overlapped, m: Mapping, grouped: dict[str, Group], anonymise_only: bool,
        places_only: bool, held: dict[str, dict[Any, str]],
    ) -> list[ItemOutcome]:
        # One transaction holds up to about max_params rows (so a batch of a few thousand
        # subjects commits once); chunks of one table never exceed it.
        tx = Tx(db, self._limit)
        out: list[ItemOutcome] = []
        for tname in m.delete_order:
            group = grouped.get(tname)
            if group is None:
                continue
            tm = m.tables[tname]
            if tm.action != "retain" and tname in m.export_only:
                out.extend(export_only_outcomes(group, tname))
                continue
            if tm.action != "retain" and held.get(tname):
                # Rows other people's rows still use: kept and said so, or anonymised.
                group, kept = split_shared(group, held[tname])
                # The kept rows' links to the subject's rows that go now are cut (a card
                # kept for someone else's order no longer points at the erased customer).
                cut = {} if anonymise_only else _links_to_deleted(m, tm, grouped)
                if tm.cfg.shared == "anonymise":
                    out.extend(self._anonymise_table(tx, tm, kept, {**tm.rules, **cut}))
                else:
                    if cut:
                        self._anonymise_table(tx, tm, kept, cut)
                    out.extend(kept_outcomes(kept, held[tname]))
                if not group.pks:
                    continue
            if tm.action == "retain":
                out.extend(ItemOutcome(f, ItemStatus.RETAINED, error=tm.cfg.reason)
                           for f in group.findings)
            elif anonymise_only:
                out.extend(self._anonymise_table(tx, tm, group, tm.rules))
            elif tm.action == "anonymise":
                rules = {**tm.rules, **tm.unlink}
                out.extend(self._anonymise_table(tx, tm, group, rules))
            else:
                self._delete_table(tx, m, tm, group, places_only)
        out.extend(tx.finish())
        return out

    # restrict ------------------------------------------------------------------------

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        m = self.mapping()
        if not any(t.cfg.restrict_column for t in m.tables.values()):
            raise CapabilityNotSupported(f"system {self.system}: no table has a restrict_column")
        findings, others = self._not_owned(findings)
        grouped, bad = self._group(findings)
        out = self._bad(bad) + self._shared(others)
        for tname, group in grouped.items():
            tm = m.tables[tname]
            flag_name = tm.cfg.restrict_column
            if not flag_name:
                out.extend(ItemOutcome(f, ItemStatus.NOT_SUPPORTED,
                                       error=f"table {tname} has no restrict_column")
                           for f in group.findings)
                continue
            by_pk = group.by_pk()
            flag = tm.col(flag_name)
            for chunk in chunks(list(by_pk), self._chunk_size(tm)):
                where = pk_filter(tm.table, tm.pk, chunk, self._dialect)
                with db_errors(f"restrict {tname}"), self._engine.begin() as conn:
                    stmt = sa.select(*tm.pk_cols(), flag).where(where)
                    state = {tuple(r[:-1]): bool(r[-1]) for r in conn.execute(stmt)}
                    to_set = [pk for pk, done in state.items() if not done]
                    if to_set:
                        conn.execute(sa.update(tm.table)
                                     .where(pk_filter(tm.table, tm.pk, to_set, self._dialect))
                                     .values({flag_name: True}))
                for pk in chunk:
                    outcome: tuple[ItemStatus, str | None]
                    if pk not in state:
                        outcome = (ItemStatus.FAILED, "row not found")
                    elif state[pk]:
                        outcome = (ItemStatus.ALREADY_DONE, None)
                    else:
                        outcome = (ItemStatus.DONE, None)
                    out.extend(ItemOutcome(f, outcome[0], error=outcome[1]) for f in by_pk[pk])
        yield from out


def _links_to_deleted(m: Mapping, tm: TableModel, grouped: dict[str, Group]
                      ) -> dict[str, AnonymiseRule]:
    """NULL rules for ``tm``'s nullable link columns to parents whose rows are deleted in
    this call (a NOT NULL one is left: the database then names the conflict)."""
    out: dict[str, AnonymiseRule] = {}
    for e in m.edges:
        if (e.child == tm.name and not e.reverse and e.parent != e.child
                and e.parent in grouped and m.tables[e.parent].action == "delete"):
            for col in e.child_cols:
                if tm.col(col).nullable and not tm.col(col).primary_key:
                    out[col] = AnonymiseRule(kind="null")
    return out


def _verifying() -> bool:
    """Whether the host calls ``find`` to verify an erasure."""
    from erasure import current_call

    try:
        return current_call().action == "verify"
    except RuntimeError:
        return False


def _connect_args(url: sa.URL) -> dict[str, Any]:
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg":
        # Plan every statement for its own key arrays: psycopg would otherwise prepare a
        # statement after five runs, and a generic plan knows neither the arrays' sizes nor
        # their values (a key check on thousands of rows then re-reads the array per row).
        return {"prepare_threshold": None}
    return {}


def _sqlite_setup(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys enforced, and ``erasure_lower``: Python's Unicode ``lower()`` (SQLite's
    own folds ASCII only; see :mod:`erasure_sql.forms`)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    dbapi_connection.create_function("erasure_lower", 1, python_lower, deterministic=True)
