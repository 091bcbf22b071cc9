"""The ledger: requests, per-system tasks and signed receipts, in SQLite (WAL) or PostgreSQL.

Every step is written before and after it runs, so a killed run resumes where it stopped.
Requests are claimed with leases: two ``erasure run`` processes never work the same request.
Raw identifiers and findings are stored encrypted, only while the request is open.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url

from .errors import ConfigError, UsageError
from .leases import new_owner, owner_alive

# the schema, re-exported for tests and tools
from .ledger_tables import (  # noqa: F401
    ledger_meta_t,
    metadata,
    outbox_t,
    packages_t,
    receipt_heads_t,
    receipts_t,
    request_keys_t,
    requests_t,
    sweeps_t,
    task_events_t,
    tasks_t,
)

__all__ = ["LeaseLost", "Ledger", "RequestRow", "TaskRow", "utcnow"]


def ledger_exists(url: str) -> bool:
    """False only for a SQLite ledger file that was never created (nothing to look up)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).exists()


def utcnow() -> datetime:
    """Naive UTC now (SQLite keeps no time zone; every stored time is UTC)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def executemany(conn: Connection, stmt: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run ``stmt`` once for each of ``rows`` (dicts with the same keys).

    On SQLite the rows go to the driver's ``executemany`` as they are, after the column
    types' own conversions (datetimes to text, as SQLAlchemy stores them): SQLAlchemy's
    per-row parameter handling took three times as long as SQLite itself, and a run writes
    some ten rows per request. On PostgreSQL SQLAlchemy already batches them well
    (multi-row VALUES, pipelined updates).
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(stmt, list(rows))
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    names = compiled.positiontup or []
    if any(n not in rows[0] for n in names):  # a column default to fill in: SQLAlchemy's way
        conn.execute(stmt, list(rows))
        return
    convert = [(i, proc) for i, n in enumerate(names)
               if (proc := compiled.binds[n].type.bind_processor(conn.dialect)) is not None]
    params = [[r[n] for n in names] for r in rows]
    for values in params:
        for i, proc in convert:
            values[i] = proc(values[i])
    conn.exec_driver_sql(compiled.string, [tuple(v) for v in params])


@dataclass(frozen=True)
class RequestRow:
    """A request as stored (identifiers still encrypted)."""

    id: str
    ticket: str | None
    type: str
    status: str
    outcome: str | None
    verified: bool
    override: str | None
    received_at: datetime
    due_at: datetime
    extension_reason: str | None
    created_at: datetime
    finished_at: datetime | None
    approved_at: datetime | None
    plan_hash: str | None
    identifiers: bytes | None
    subject_digest: str | None
    lease_owner: str | None
    lease_until: float | None
    not_before: float | None = None
    dedupe_key: str | None = None


@dataclass(frozen=True)
class TaskRow:
    request_id: str
    system: str
    stage: str
    outcome: str | None
    state: bytes | None
    summary: str | None
    started_at: datetime | None
    finished_at: datetime | None
    not_before: float | None = None
    updated_at: datetime | None = None


class LeaseLost(Exception):
    """This runner no longer holds the lease of some requests it was working on."""


class Ledger:
    """Typed access to the ledger database."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except Exception:
            raise ConfigError("erasure.ledger: not a database URL") from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except Exception as exc:
            raise ConfigError(
                f"erasure.ledger: cannot use this URL ({type(exc).__name__})"
            ) from None
        if self.is_sqlite:
            self._sqlite_setup(self.engine)
        self.owner = new_owner()
        try:
            metadata.create_all(self.engine)
            self._add_missing_columns()
        except Exception as exc:
            raise ConfigError(
                f"erasure.ledger: cannot open the ledger database ({type(exc).__name__})"
            ) from None

    def _add_missing_columns(self) -> None:
        """Add nullable columns a newer version declares to a ledger an older one made."""
        from sqlalchemy import inspect

        with self.engine.begin() as conn:
            inspector = inspect(conn)
            for table in metadata.sorted_tables:
                have = {c["name"] for c in inspector.get_columns(table.name)}
                for col in table.columns:
                    if col.name not in have and col.nullable:
                        kind = col.type.compile(dialect=self.engine.dialect)
                        conn.exec_driver_sql(
                            f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {kind}')
                for index in table.indexes:
                    index.create(conn, checkfirst=True)

    @staticmethod
    def _sqlite_setup(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _rec: Any) -> None:
            # Take over transaction control so that "begin" can be IMMEDIATE: two runs at
            # once then serialise on the write lock instead of failing on upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            # A ledger of ten thousand open requests is tens of MiB; the default 2 MiB
            # page cache made every batch's writes slower as the file grew.
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # requests ------------------------------------------------------------------------

    def add_requests(self, rows: Sequence[dict[str, Any]],
                     seal: Callable[[Connection, list[str]], None] | None = None
                     ) -> list[str]:
        """Insert new requests (dicts of requests columns) in one transaction; the id of
        each row, which is an existing request's id where one has the row's ``dedupe_key``
        already (that row is not inserted). ``seal`` stores the keys of the inserted ones
        in the same transaction."""
        if not rows:
            return []
        now = utcnow()
        with self.tx() as conn:
            keys = sorted({r["dedupe_key"] for r in rows if r.get("dedupe_key")})
            known: dict[str, str] = {}
            for i in range(0, len(keys), 900):
                known.update((row.dedupe_key, row.id) for row in conn.execute(
                    select(requests_t.c.dedupe_key, requests_t.c.id)
                    .where(requests_t.c.dedupe_key.in_(keys[i : i + 900]))))
            ids, new = [], []
            for r in rows:
                key = r.get("dedupe_key")
                if key and key in known:
                    ids.append(known[key])
                    continue
                if key:
                    known[key] = r["id"]
                ids.append(r["id"])
                new.append({"status": "open", "created_at": now, "dedupe_key": None, **r})
            for i in range(0, len(new), 5000):
                executemany(conn, insert(requests_t), new[i : i + 5000])
            if seal is not None:
                seal(conn, [r["id"] for r in new])
        return ids

    def get_request(self, request_id: str) -> RequestRow:
        with self.engine.connect() as conn:
            row = conn.execute(select(requests_t).where(requests_t.c.id == request_id)).first()
        if row is None:
            raise UsageError(f"no request {request_id!r} in the ledger")
        return RequestRow(**row._mapping)

    def list_requests(self, *, open_only: bool = False, limit: int = 1000) -> list[RequestRow]:
        q = select(requests_t).order_by(requests_t.c.due_at).limit(limit)
        if open_only:
            q = q.where(requests_t.c.status != "done")
        with self.engine.connect() as conn:
            return [RequestRow(**r._mapping) for r in conn.execute(q)]

    def count_requests(self, status: str | None = None) -> int:
        q = select(func.count()).select_from(requests_t)
        if status is not None:
            q = q.where(requests_t.c.status == status)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def update_request(self, request_id: str, **values: Any) -> None:
        with self.tx() as conn:
            res = conn.execute(
                update(requests_t).where(requests_t.c.id == request_id).values(**values)
            )
        if res.rowcount == 0:
            raise UsageError(f"no request {request_id!r} in the ledger")

    def claim(self, limit: int, lease_seconds: float, now: float, *,
              only: Sequence[str] | None = None, due_by: float | None = None,
              ) -> list[RequestRow]:
        """Lease up to ``limit`` open requests that are due by ``due_by`` (oldest due date
        first) for this process."""
        free = or_(requests_t.c.lease_until.is_(None), requests_t.c.lease_until < now)
        due = or_(requests_t.c.not_before.is_(None),
                  requests_t.c.not_before <= (now if due_by is None else due_by))
        q = (
            select(requests_t)
            .where(requests_t.c.status == "open", due)
            .order_by(requests_t.c.due_at, requests_t.c.id)
        )
        if only is not None:
            q = q.where(requests_t.c.id.in_(list(only)))
        with self.tx() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
            rows = conn.execute(q.where(free).limit(limit)).all()
            if len(rows) < limit:
                # Leases held by processes on this host that died (kill -9) are free now.
                held = conn.execute(
                    q.where(~free).where(requests_t.c.lease_owner != self.owner)
                    .limit(limit * 4)
                ).all()
                dead = [r for r in held if not owner_alive(r.lease_owner)]
                rows.extend(dead[: limit - len(rows)])
            ids = [r.id for r in rows]
            for i in range(0, len(ids), 900):
                conn.execute(
                    update(requests_t)
                    .where(requests_t.c.id.in_(ids[i : i + 900]))
                    .values(lease_owner=self.owner, lease_until=now + lease_seconds)
                )
        return [RequestRow(**r._mapping) for r in rows]

    def renew(self, ids: Sequence[str], lease_seconds: float, now: float) -> None:
        """Extend this process's leases on ``ids``."""
        self._own_leases(ids, lease_until=now + lease_seconds)

    def release(self, ids: Sequence[str]) -> None:
        """Give up this process's leases on ``ids``."""
        self._own_leases(ids, lease_owner=None, lease_until=None)

    def _own_leases(self, ids: Sequence[str], **values: Any) -> None:
        # Only leases this process still holds: one that expired and was taken over by
        # another run must not be touched.
        with self.tx() as conn:
            for i in range(0, len(ids), 900):
                conn.execute(
                    update(requests_t)
                    .where(and_(requests_t.c.id.in_(ids[i : i + 900]),
                                requests_t.c.lease_owner == self.owner))
                    .values(**values)
                )

    @contextmanager
    def fenced(self, ids: Sequence[str]) -> Iterator[tuple[Connection, set[str]]]:
        """A write transaction and the ``ids`` whose leases this process still holds.

        The fencing check of every write: rows of requests outside the set must not be
        written (their lease expired and another runner may have them now).
        """
        with self.tx() as conn:
            if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE already holds the write lock
                conn.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
            owned: set[str] = set()
            unique = sorted(set(ids))
            for i in range(0, len(unique), 900):
                owned.update(conn.execute(
                    select(requests_t.c.id).where(
                        requests_t.c.id.in_(unique[i : i + 900]),
                        requests_t.c.lease_owner == self.owner)).scalars())
            yield conn, owned

    # tasks ---------------------------------------------------------------------------

    def tasks_for(self, request_ids: Sequence[str]) -> list[TaskRow]:
        out: list[TaskRow] = []
        with self.engine.connect() as conn:
            for i in range(0, len(request_ids), 900):
                q = select(tasks_t).where(tasks_t.c.request_id.in_(request_ids[i : i + 900]))
                out.extend(TaskRow(**r._mapping) for r in conn.execute(q))
        return out

    def ensure_tasks(self, request_ids: Sequence[str], systems: Iterable[str]
                     ) -> list[TaskRow]:
        """Create a pending task in each of ``systems`` for each request that has none
        there yet; every task of the requests, as :meth:`tasks_for` would read them."""
        tasks = self.tasks_for(request_ids)
        existing = {(t.request_id, t.system) for t in tasks}
        new = [
            {"request_id": r, "system": s, "stage": "pending"}
            for r in request_ids for s in systems
            if (r, s) not in existing
        ]
        if new:
            with self.tx() as conn:
                executemany(conn, insert(tasks_t), new)
            tasks.extend(TaskRow(outcome=None, state=None, summary=None, started_at=None,
                                 finished_at=None, **row) for row in new)
        return tasks

    _TASK_KEYS = ("stage", "outcome", "summary", "not_before")

    def save_tasks(self, conn: Connection, updates: Sequence[dict[str, Any]],
                   events: Sequence[dict[str, Any]] = ()) -> None:
        """Write task changes (dicts with request_id, system, stage, outcome, summary,
        not_before and optionally state) and their transitions, as one statement shape per
        kind of change, executed for many rows at once."""
        now = utcnow()
        for with_state in (False, True):
            rows = [{"b_rid": u["request_id"], "b_sys": u["system"], "updated_at": now,
                     **{k: u[k] for k in self._TASK_KEYS},
                     **({"state": u["state"]} if with_state else {})}
                    for u in updates if ("state" in u) is with_state]
            if not rows:
                continue
            stmt = (update(tasks_t)
                    .where(tasks_t.c.request_id == bindparam("b_rid"),
                           tasks_t.c.system == bindparam("b_sys"))
                    .values({k: bindparam(k) for k in rows[0] if not k.startswith("b_")}))
            executemany(conn, stmt, rows)
        if events:
            executemany(conn, insert(task_events_t), [{"at": now, **e} for e in events])

    def set_requests(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Update requests: dicts with ``id`` and the same columns each."""
        if not rows:
            return
        stmt = (update(requests_t).where(requests_t.c.id == bindparam("b_id"))
                .values({k: bindparam(k) for k in rows[0] if k != "id"}))
        executemany(conn, stmt, [{"b_id": r["id"], **{k: v for k, v in r.items() if k != "id"}}
                                 for r in rows])

    def task_events(self, request_id: str) -> list[dict[str, Any]]:
        """Every recorded transition of a request's tasks, oldest first."""
        q = (select(task_events_t).where(task_events_t.c.request_id == request_id)
             .order_by(task_events_t.c.id))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def open_tasks(self, limit: int = 1000) -> list[TaskRow]:
        """Tasks of open requests that are not done (for ``erasure status``)."""
        q = (select(tasks_t).join(requests_t, requests_t.c.id == tasks_t.c.request_id)
             .where(requests_t.c.status != "done", tasks_t.c.stage != "done")
             .order_by(tasks_t.c.request_id, tasks_t.c.system).limit(limit))
        failed = (select(tasks_t).join(requests_t, requests_t.c.id == tasks_t.c.request_id)
                  .where(requests_t.c.status != "done", tasks_t.c.outcome == "failed")
                  .limit(limit))
        with self.engine.connect() as conn:
            rows = {(r.request_id, r.system): r for q_ in (q, failed) for r in conn.execute(q_)}
        return [TaskRow(**r._mapping) for _k, r in sorted(rows.items())]

    # outbox --------------------------------------------------------------------------

    def add_events(self, conn: Connection, events: Sequence[tuple[str, str, dict[str, Any]]]
                   ) -> None:
        """Record hook events (event id, hook name, payload) in the caller's transaction."""
        if events:
            now = utcnow()
            conn.execute(insert(outbox_t), [
                {"id": eid, "hook": hook, "payload": json.dumps(payload, sort_keys=True),
                 "created_at": now} for eid, hook, payload in events])

    def undelivered(self, limit: int = 1000) -> list[tuple[str, str, dict[str, Any]]]:
        q = (select(outbox_t).where(outbox_t.c.delivered_at.is_(None))
             .order_by(outbox_t.c.created_at, outbox_t.c.id).limit(limit))
        with self.engine.connect() as conn:
            return [(r.id, r.hook, json.loads(r.payload)) for r in conn.execute(q)]

    def mark_delivered(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self.tx() as conn:
            for i in range(0, len(ids), 900):
                conn.execute(update(outbox_t).where(outbox_t.c.id.in_(ids[i : i + 900]))
                             .values(delivered_at=utcnow()))

    # packages ------------------------------------------------------------------------

    def add_packages(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Record packages made in the transaction that ends their requests (a package
        made again by a resumed run replaces its row)."""
        if not rows:
            return
        conn.execute(packages_t.delete().where(
            packages_t.c.request_id.in_([r["request_id"] for r in rows])))
        conn.execute(insert(packages_t), list(rows))

    def live_packages(self) -> list[dict[str, Any]]:
        """Packages not deleted yet, oldest first (file, expiry, subjects' hashes)."""
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(packages_t).where(packages_t.c.deleted_at.is_(None))
                .order_by(packages_t.c.made_at))]

    def packages(self, request_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        q = select(packages_t).order_by(packages_t.c.made_at)
        if request_ids is not None:
            q = q.where(packages_t.c.request_id.in_(list(request_ids)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def packages_deleted(self, ids: Sequence[str], why: str) -> None:
        if not ids:
            return
        with self.tx() as conn:
            conn.execute(update(packages_t).where(packages_t.c.request_id.in_(list(ids)))
                         .values(deleted_at=utcnow(), deleted_why=why, subjects=None))

    # request keys (crypto-shredding) --------------------------------------------------

    def key_state(self, conn: Connection, *, exclusive: bool = False) -> tuple[int, bool]:
        """(current key epoch, whether requests ended since it began), read under the
        rotation lock: shared to add keys, ``exclusive`` to rotate. On SQLite every write
        transaction already holds the database's write lock."""
        if not self.is_sqlite:
            fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
            conn.execute(text(f"SELECT {fn}(4242003)"))
        meta = dict(conn.execute(select(ledger_meta_t.c.name, ledger_meta_t.c.value).where(
            ledger_meta_t.c.name.in_(["key_epoch", "key_rotation_due"]))).all())
        return int(meta.get("key_epoch", "1")), meta.get("key_rotation_due") == "1"

    def _set_meta(self, conn: Connection, name: str, value: str) -> None:
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as upsert
        else:
            from sqlalchemy.dialects.postgresql import insert as upsert
        stmt = upsert(ledger_meta_t).values(name=name, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                                set_={"value": stmt.excluded.value}))

    def set_key_epoch(self, conn: Connection, epoch: int) -> None:
        """A rotation's end: the new epoch, nothing left to rotate."""
        self._set_meta(conn, "key_epoch", str(epoch))
        self._set_meta(conn, "key_rotation_due", "0")

    def add_request_keys(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(rows), 5000):
            executemany(conn, insert(request_keys_t), rows[i : i + 5000])

    def request_keys(self, ids: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """{request id: (epoch, wrapped key)} of those of ``ids`` that have a key."""
        out: dict[str, tuple[int, bytes]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 900):
                out.update((r.request_id, (r.epoch, r.wrapped)) for r in conn.execute(
                    select(request_keys_t).where(
                        request_keys_t.c.request_id.in_(ids[i : i + 900]))))
        return out

    def request_keys_before(self, conn: Connection, epoch: int
                            ) -> dict[str, tuple[int, bytes]]:
        return {r.request_id: (r.epoch, r.wrapped) for r in conn.execute(
            select(request_keys_t).where(request_keys_t.c.epoch < epoch))}

    def rewrap_request_keys(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            conn.execute(
                update(request_keys_t)
                .where(request_keys_t.c.request_id == bindparam("rid"))
                .values(epoch=bindparam("new_epoch"), wrapped=bindparam("new_wrapped")),
                [{"rid": r["request_id"], "new_epoch": r["epoch"],
                  "new_wrapped": r["wrapped"]} for r in rows])

    def drop_request_keys(self, conn: Connection, ids: Sequence[str]) -> None:
        """In the transaction that ends these requests; the epoch is then due to rotate."""
        self.key_state(conn)  # the shared lock: a rotation running now sees the flag
        for i in range(0, len(ids), 900):
            conn.execute(request_keys_t.delete().where(
                request_keys_t.c.request_id.in_(ids[i : i + 900])))
        self._set_meta(conn, "key_rotation_due", "1")

    # receipts ------------------------------------------------------------------------

    def chain_head(self, conn: Connection) -> tuple[int, str]:
        """(last seq, last hash) inside a write transaction; locks the chain on PostgreSQL."""
        if not self.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(4242002)"))
        row = conn.execute(
            select(receipts_t.c.seq, receipts_t.c.hash).order_by(receipts_t.c.seq.desc()).limit(1)
        ).first()
        return (row.seq, row.hash) if row else (0, "0" * 64)

    def add_receipts(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            executemany(conn, insert(receipts_t), rows)

    def receipts(self, request_id: str | None = None) -> list[dict[str, Any]]:
        q = select(receipts_t).order_by(receipts_t.c.seq)
        if request_id is not None:
            q = q.where(receipts_t.c.request_id == request_id)
        with self.engine.connect() as conn:
            return [
                {"seq": r.seq, "body": json.loads(r.body), "hash": r.hash,
                 "signature": r.signature}
                for r in conn.execute(q)
            ]

    # retention sweeps ----------------------------------------------------------------

    def claim_sweep(self, system: str, lease_seconds: float, now: float) -> bool:
        """Take the sweep lease of ``system`` (free, expired, or its owner died): True."""
        with self.tx() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
            row = conn.execute(select(sweeps_t).where(sweeps_t.c.system == system)).first()
            values = {"lease_owner": self.owner, "lease_until": now + lease_seconds}
            if row is None:
                conn.execute(insert(sweeps_t).values(system=system, **values))
                return True
            free = (row.lease_until is None or row.lease_until < now
                    or row.lease_owner == self.owner or not owner_alive(row.lease_owner))
            if free:
                conn.execute(update(sweeps_t).where(sweeps_t.c.system == system).values(**values))
            return free

    def renew_sweeps(self, systems: Sequence[str], lease_seconds: float, now: float) -> None:
        """Extend this process's sweep leases."""
        with self.tx() as conn:
            conn.execute(update(sweeps_t).where(sweeps_t.c.system.in_(list(systems)),
                                                sweeps_t.c.lease_owner == self.owner)
                         .values(lease_until=now + lease_seconds))

    def release_sweep(self, system: str) -> None:
        """Give up this process's sweep lease of ``system``."""
        with self.tx() as conn:
            conn.execute(update(sweeps_t).where(sweeps_t.c.system == system,
                                                sweeps_t.c.lease_owner == self.owner)
                         .values(lease_owner=None, lease_until=None))

    def record_sweep(self, conn: Connection, system: str, **values: Any) -> bool:
        """Record a finished sweep in the caller's transaction, fenced by the lease: False
        (nothing written) when another process holds it now."""
        res = conn.execute(update(sweeps_t).where(sweeps_t.c.system == system,
                                                  sweeps_t.c.lease_owner == self.owner)
                           .values(**values))
        return bool(res.rowcount)

    def sweeps(self) -> list[dict[str, Any]]:
        """Every system's last sweep (for ``erasure status``)."""
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(sweeps_t)
                                                           .order_by(sweeps_t.c.system))]


def _private_file(path: Path) -> None:
    """Create the ledger file (and its folder) readable by its owner only, before SQLite
    opens it: SQLite gives its -wal and -shm files the database file's permissions."""
    import os

    from .files import private_dir

    private_dir(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and p.stat().st_mode & 0o077:
            p.chmod(0o600)


def add_months(when: datetime, months: int) -> datetime:
    """Same day ``months`` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    from .connector import months_before

    return months_before(when, -months)


def days_left(due: datetime, now: datetime | None = None) -> int:
    now = now or utcnow()
    return (due - now) // timedelta(days=1)
