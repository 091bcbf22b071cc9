"""The ledger: requests, per-system tasks and signed receipts, in SQLite (WAL) or PostgreSQL.

Every step is written before and after it runs, so a killed run resumes where it stopped.
Requests are claimed with leases: two ``erasure run`` processes never work the same request.
Raw identifiers and findings are stored encrypted, only while the request is open.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
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

__all__ = ["Ledger", "RequestRow", "TaskRow", "utcnow"]

metadata = MetaData()

requests_t = Table(
    "requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("ticket", String(200)),
    Column("type", String(20), nullable=False),
    Column("status", String(20), nullable=False, index=True),  # open|awaiting_approval|done
    Column("outcome", String(30)),
    Column("verified", Boolean, nullable=False, default=False),
    Column("override", Text),
    Column("received_at", DateTime, nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("extension_reason", Text),
    Column("created_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("approved_at", DateTime),
    # keyed hash of the plan shown for approval: what the approver saw
    Column("plan_hash", String(64)),
    Column("identifiers", LargeBinary),  # encrypted; NULL once finished
    Column("subject_digest", String(64)),
    Column("lease_owner", String(120)),
    Column("lease_until", Float),
)

tasks_t = Table(
    "tasks",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("system", String(63), primary_key=True),
    # pending -> found -> acting -> acted -> done
    Column("stage", String(20), nullable=False),
    Column("outcome", String(30)),
    Column("state", LargeBinary),  # encrypted findings and outcomes; NULL once finished
    Column("summary", Text),  # JSON without personal data: counts, attempts, errors
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
)

receipts_t = Table(
    "receipts",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(40), nullable=False, index=True),
    Column("system", String(63), nullable=False),
    Column("body", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("signature", String(120), nullable=False),
)


def ledger_exists(url: str) -> bool:
    """False only for a SQLite ledger file that was never created (nothing to look up)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).exists()


def utcnow() -> datetime:
    """Naive UTC now (SQLite keeps no time zone; every stored time is UTC)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


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


def _owner_alive(owner: str | None) -> bool:
    """Whether a lease owner on this host is still running (a kill -9 frees its lease now)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: trust the lease time
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ledger:
    """Typed access to the ledger database."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except Exception:
            raise ConfigError("erasure.ledger: not a database URL") from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
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
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
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

    def add_requests(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new requests (dicts of requests columns) in one transaction."""
        if not rows:
            return
        now = utcnow()
        with self.tx() as conn:
            for i in range(0, len(rows), 5000):
                conn.execute(
                    insert(requests_t),
                    [{"status": "open", "created_at": now, **r} for r in rows[i : i + 5000]],
                )

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
              only: Sequence[str] | None = None) -> list[RequestRow]:
        """Lease up to ``limit`` open requests for this process (oldest due first)."""
        free = or_(requests_t.c.lease_until.is_(None), requests_t.c.lease_until < now)
        q = (
            select(requests_t)
            .where(requests_t.c.status == "open")
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
                dead = [r for r in held if not _owner_alive(r.lease_owner)]
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

    # tasks ---------------------------------------------------------------------------

    def tasks_for(self, request_ids: Sequence[str]) -> list[TaskRow]:
        out: list[TaskRow] = []
        with self.engine.connect() as conn:
            for i in range(0, len(request_ids), 900):
                q = select(tasks_t).where(tasks_t.c.request_id.in_(request_ids[i : i + 900]))
                out.extend(TaskRow(**r._mapping) for r in conn.execute(q))
        return out

    def ensure_tasks(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Create pending tasks for (request, system) pairs that have none yet."""
        pairs = list(pairs)
        if not pairs:
            return
        existing = {(t.request_id, t.system) for t in self.tasks_for(sorted({p[0] for p in pairs}))}
        new = [
            {"request_id": r, "system": s, "stage": "pending"}
            for r, s in pairs
            if (r, s) not in existing
        ]
        if new:
            with self.tx() as conn:
                conn.execute(insert(tasks_t), new)

    def save_tasks(self, updates: Sequence[dict[str, Any]], conn: Connection | None = None) -> None:
        """Write task changes: dicts with request_id, system and the columns to set."""
        if not updates:
            return
        if conn is None:
            with self.tx() as c:
                self._save_tasks(c, updates)
        else:
            self._save_tasks(conn, updates)

    @staticmethod
    def _save_tasks(conn: Connection, updates: Sequence[dict[str, Any]]) -> None:
        for u in updates:
            values = {k: v for k, v in u.items() if k not in ("request_id", "system")}
            conn.execute(
                update(tasks_t)
                .where(and_(tasks_t.c.request_id == u["request_id"],
                            tasks_t.c.system == u["system"]))
                .values(**values)
            )

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
            conn.execute(insert(receipts_t), list(rows))

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



def add_months(when: datetime, months: int) -> datetime:
    """Same day ``months`` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    import calendar

    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def days_left(due: datetime, now: datetime | None = None) -> int:
    now = now or utcnow()
    return (due - now) // timedelta(days=1)
