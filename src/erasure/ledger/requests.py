"""Requests and their claims: intake, reads, leases and the fence of every write."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, literal, or_, select, union_all, update
from sqlalchemy.engine import Connection

from ..errors import UsageError
from ..leases import owner_alive
from ..ledger_tables import api_requests_t, requests_t, tasks_t
from .api import CallbackTarget, callback_target
from .db import Database, Lock, executemany, utcnow

__all__ = ["RequestRow", "RequestStore"]


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
    verified_how: str | None = None


class RequestStore(Database):
    """The ``requests`` table: what was asked, by whom it is being worked on (leases)."""

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
            # Serialised, so that the same request recorded by two processes at once is
            # found by the second instead of failing it on the unique dedupe key.
            self.lock(conn, Lock.INTAKE)
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
        with self.read() as conn:
            row = conn.execute(select(requests_t).where(requests_t.c.id == request_id)).first()
        if row is None:
            raise UsageError(f"no request {request_id!r} in the ledger")
        return RequestRow(**row._mapping)

    def request_view(self, request_id: str) -> tuple[RequestRow, dict[str, Any], list[Any]]:
        """A request as the API shows it, in one statement: its row, what the API recorded
        of it (``subject_request_id``, ``cancelled_at``; empty if it came another way) and
        its tasks (:class:`~.tasks.TaskRow`). UsageError naming it when there is none."""
        from .tasks import TaskRow

        q = (select(*requests_t.c,
                    api_requests_t.c.subject_request_id.label("a_subject_request_id"),
                    api_requests_t.c.cancelled_at.label("a_cancelled_at"),
                    *(c.label(f"t_{c.name}") for c in tasks_t.c))
             .select_from(requests_t
                          .outerjoin(api_requests_t,
                                     api_requests_t.c.request_id == requests_t.c.id)
                          .outerjoin(tasks_t, tasks_t.c.request_id == requests_t.c.id))
             .where(requests_t.c.id == request_id))
        with self.read() as conn:
            rows = [r._mapping for r in conn.execute(q)]
        if not rows:
            raise UsageError(f"no request {request_id!r} in the ledger")
        first = rows[0]
        row = RequestRow(**{c.name: first[c.name] for c in requests_t.c})
        api = {k: first[f"a_{k}"] for k in ("subject_request_id", "cancelled_at")
               if first[f"a_{k}"] is not None}
        tasks = [TaskRow(**{c.name: m[f"t_{c.name}"] for c in tasks_t.c})
                 for m in rows if m["t_system"] is not None]
        return row, api, tasks

    def list_requests(self, *, open_only: bool = False, limit: int = 1000) -> list[RequestRow]:
        q = select(requests_t).order_by(requests_t.c.due_at).limit(limit)
        if open_only:
            q = q.where(requests_t.c.status != "done")
        with self.read() as conn:
            return [RequestRow(**r._mapping) for r in conn.execute(q)]

    def request_ids_by_ticket(self, ticket: str, limit: int = 100) -> list[str]:
        """Ids of the requests recorded with ``ticket`` (newest first)."""
        q = (select(requests_t.c.id).where(requests_t.c.ticket == ticket)
             .order_by(requests_t.c.created_at.desc(), requests_t.c.id).limit(limit))
        with self.read() as conn:
            return list(conn.execute(q).scalars())

    def count_requests(self, status: str | None = None) -> int:
        q = select(func.count()).select_from(requests_t)
        if status is not None:
            q = q.where(requests_t.c.status == status)
        with self.read() as conn:
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
              awaiting_approval: bool = False) -> list[RequestRow]:
        """Lease up to ``limit`` open requests that are due by ``due_by`` (oldest due date
        first) for this process; ``awaiting_approval``: those awaiting approval too (a
        person's command on one of ``only``; a run never claims them).

        On PostgreSQL the claim commits without waiting for its WAL to reach the disk
        (``synchronous_commit`` off for this transaction alone): a lease only says who
        works a request, and every write that relies on it is fenced (:meth:`fenced`
        checks the lease in the writing transaction, which commits durably, and so makes
        the claim before it durable too). A claim lost to a database crash leaves the
        request free: the runner's next fenced write finds it does not hold it, and drops
        the work unwritten; nothing was acted on before that write (the intent is saved
        before any action).
        """
        free = or_(requests_t.c.lease_until.is_(None), requests_t.c.lease_until < now)
        due = or_(requests_t.c.not_before.is_(None),
                  requests_t.c.not_before <= (now if due_by is None else due_by))
        statuses = ["open", "awaiting_approval"] if awaiting_approval else ["open"]
        q = select(requests_t).where(requests_t.c.status.in_(statuses), due)
        if only is not None:
            q = q.where(requests_t.c.id.in_(list(only)))
        order = (requests_t.c.due_at, requests_t.c.id)
        # One statement: the free requests due first, and the leases others on this host
        # hold (those of processes that died, kill -9, are free now: owner_alive decides).
        host = ":".join(self.owner.split(":")[:2]) + ":"
        both = union_all(
            select(q.add_columns(literal(0).label("held_"))
                   .where(free).order_by(*order).limit(limit).subquery()),
            select(q.add_columns(literal(1).label("held_"))
                   .where(~free, requests_t.c.lease_owner != self.owner,
                          requests_t.c.lease_owner.startswith(host, autoescape=True))
                   .order_by(*order).limit(limit * 4).subquery()))
        with self.tx() as conn:
            self.lock(conn, Lock.LEASES, durable=False)
            found = sorted(conn.execute(both).all(),
                           key=lambda r: (r.held_, r.due_at, r.id))
            rows = [r for r in found if not r.held_]
            if len(rows) < limit:
                dead = [r for r in found if r.held_ and not owner_alive(r.lease_owner)]
                rows.extend(dead[: limit - len(rows)])
            ids = [r.id for r in rows]
            for i in range(0, len(ids), 900):
                conn.execute(
                    update(requests_t)
                    .where(requests_t.c.id.in_(ids[i : i + 900]))
                    .values(lease_owner=self.owner, lease_until=now + lease_seconds)
                )
        return [RequestRow(**{k: v for k, v in r._mapping.items() if k != "held_"})
                for r in rows]

    def renew(self, ids: Sequence[str], lease_seconds: float, now: float) -> None:
        """Extend this process's leases on ``ids``."""
        self._own_leases(ids, lease_until=now + lease_seconds)

    def release(self, ids: Sequence[str]) -> None:
        """Give up this process's leases on ``ids``."""
        self._own_leases(ids, lease_owner=None, lease_until=None)

    def _own_leases(self, ids: Sequence[str], **values: Any) -> None:
        # Only leases this process still holds: one that expired and was taken over by
        # another run must not be touched.
        if not ids:
            return
        with self.tx() as conn:
            for i in range(0, len(ids), 900):
                conn.execute(
                    update(requests_t)
                    .where(and_(requests_t.c.id.in_(ids[i : i + 900]),
                                requests_t.c.lease_owner == self.owner))
                    .values(**values)
                )

    @contextmanager
    def fenced(self, ids: Sequence[str], *, targets: dict[str, CallbackTarget] | None = None
               ) -> Iterator[tuple[Connection, set[str]]]:
        """A write transaction and the ``ids`` whose leases this process still holds.

        The fencing check of every write: rows of requests outside the set must not be
        written (their lease expired and another runner may have them now). ``targets``
        receives the callback targets of the requests held (as
        :meth:`~.api.ApiStore.callback_targets` reads them), read in the same statement.
        """
        a = api_requests_t.c
        with self.tx() as conn:
            self.lock(conn, Lock.LEASES)  # SQLite: BEGIN IMMEDIATE holds the write lock
            owned: set[str] = set()
            unique = sorted(set(ids))
            for i in range(0, len(unique), 900):
                q = select(requests_t.c.id).where(requests_t.c.id.in_(unique[i : i + 900]),
                                                  requests_t.c.lease_owner == self.owner)
                if targets is None:
                    owned.update(conn.execute(q).scalars())
                    continue
                q = q.add_columns(a.subject_request_id, a.callback_urls, a.callback_secret,
                                  a.zendesk_ticket, a.cancelled_at).outerjoin(
                    api_requests_t, a.request_id == requests_t.c.id)
                for r in conn.execute(q):
                    owned.add(r.id)
                    target = callback_target(r.id, r)
                    if target is not None:
                        targets[r.id] = target
            yield conn, owned
