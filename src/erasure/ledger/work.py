"""Batches sent to distributed workers: queued, running on a worker, finished."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update

from ..ledger_tables import requests_t, work_batches_t
from .db import executemany, utcnow
from .workers import WorkerStore, process_state

__all__ = ["WorkStore"]


def _utc(epoch: float) -> datetime:
    """Epoch seconds as the ledger's naive UTC datetime, to the second."""
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None, microsecond=0)


class WorkStore(WorkerStore):
    """The ``work_batches`` table (`erasure run --distributed`, `erasure status`)."""

    def add_batches(self, batches: Sequence[tuple[str, int]]) -> None:
        """Record batches (task id, number of requests) as queued; finished batches more
        than a day old are forgotten."""
        now = utcnow()
        with self.tx() as conn:
            conn.execute(delete(work_batches_t).where(
                work_batches_t.c.finished_at < now - timedelta(days=1)))
            executemany(conn, insert(work_batches_t), [
                {"id": bid, "requests": n, "enqueued_at": now, "worker": None,
                 "started_at": None, "finished_at": None, "done": None}
                for bid, n in batches])

    def drop_batches(self, ids: Sequence[str]) -> None:
        """Forget batches that could not be sent."""
        with self.tx() as conn:
            conn.execute(delete(work_batches_t).where(work_batches_t.c.id.in_(list(ids))))

    def start_batch(self, batch_id: str, worker: str, process: str | None = None) -> None:
        """``worker`` took the batch (again, if its first worker died), in its process
        ``process`` (a lease owner, whose heartbeat says whether the batch is worked)."""
        with self.tx() as conn:
            conn.execute(update(work_batches_t).where(work_batches_t.c.id == batch_id)
                         .values(worker=worker, process=process, started_at=utcnow(),
                                 finished_at=None))

    def finish_batch(self, batch_id: str, done: int) -> None:
        with self.tx() as conn:
            conn.execute(update(work_batches_t).where(work_batches_t.c.id == batch_id)
                         .values(finished_at=utcnow(), done=done))

    def work_by_worker(self, lease_seconds: float, now: float | None = None) -> dict[str, Any]:
        """Queued batches and requests, and per worker (every one that worked a batch or
        beat within the last day): whether it is live, gone or stopped (its processes'
        heartbeats), its running, stalled and finished (last day) batches, and when it
        last beat and last started or finished a batch.

        A batch is stalled when the process working it is gone or stopped without
        finishing it. Its message was not acknowledged: the broker gives it back to a
        worker, which resumes its requests once their leases end, which is by
        ``leases_end_by`` (the last beat, one interval, and ``lease_seconds``; at once for
        a worker on the dead one's host).
        """
        now = time.time() if now is None else now
        b = work_batches_t
        with self.engine.connect() as conn:
            queued = conn.execute(select(func.count(), func.coalesce(func.sum(b.c.requests), 0))
                                  .where(b.c.started_at.is_(None))).one()
            rows = conn.execute(select(b.c.worker, b.c.process, b.c.requests, b.c.started_at,
                                       b.c.finished_at).where(b.c.worker.is_not(None))).all()
        beats = self.worker_beats()
        procs = {p.process: p for p in beats}
        workers: dict[str, dict[str, Any]] = {}

        def entry(name: str) -> dict[str, Any]:
            return workers.setdefault(name, {
                "state": None, "last_beat": None, "running_batches": 0, "running_requests": 0,
                "stalled_batches": 0, "stalled_requests": 0, "leases_end_by": None,
                "finished_batches": 0, "last_seen": None})

        holding = {r.process for r in rows if r.finished_at is None}
        latest: dict[str, Any] = {}  # per worker, its process that beat last
        live: set[str] = set()
        for p in beats:
            if p.beat_at < now - 86_400 and p.process not in holding:
                continue  # a worker long gone that holds nothing
            entry(p.worker)
            if p.worker not in latest or p.beat_at > latest[p.worker].beat_at:
                latest[p.worker] = p
            if process_state(p, now) == "live":
                live.add(p.worker)
        for name, p in latest.items():
            workers[name]["last_beat"] = _utc(p.beat_at)
            workers[name]["state"] = "live" if name in live else process_state(p, now)
        stalled_total = 0
        for r in rows:
            w = entry(r.worker)
            if r.finished_at is None:
                # its process; else (a worker of an older version, or a process whose
                # first beat is not written yet) what its worker's last beat says
                held_by = procs.get(r.process) or latest.get(r.worker)
                state = None if held_by is None else process_state(held_by, now)
                if state in ("gone", "stopped"):
                    w["stalled_batches"] += 1
                    w["stalled_requests"] += r.requests
                    stalled_total += 1
                    if held_by is not None:
                        ends = _utc(held_by.beat_at + held_by.beat_seconds + lease_seconds)
                        if w["leases_end_by"] is None or ends > w["leases_end_by"]:
                            w["leases_end_by"] = ends
                else:
                    w["running_batches"] += 1
                    w["running_requests"] += r.requests
            else:
                w["finished_batches"] += 1
            seen: datetime = r.finished_at or r.started_at
            if w["last_seen"] is None or seen > w["last_seen"]:
                w["last_seen"] = seen
        return {"queued_batches": int(queued[0]), "queued_requests": int(queued[1]),
                "stalled_batches": stalled_total, "workers": dict(sorted(workers.items()))}

    def batches_among(self, ids: Sequence[str]) -> tuple[int, int]:
        """Of the batches ``ids``: how many are queued (no worker started them) and how many
        are running (started, not finished)."""
        b = work_batches_t
        queued = running = 0
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 900):
                row = conn.execute(select(
                    func.count().filter(b.c.started_at.is_(None)),
                    func.count().filter(b.c.started_at.is_not(None) & b.c.finished_at.is_(None)),
                ).where(b.c.id.in_(list(ids[i : i + 900])))).one()
                queued += int(row[0])
                running += int(row[1])
        return queued, running

    def due_requests(self, due_by: float, limit: int | None = None) -> list[str]:
        """Ids of the open requests due by ``due_by`` (oldest due date first), whoever
        holds them: what `erasure run --distributed` sends to the workers."""
        q = (select(requests_t.c.id)
             .where(requests_t.c.status == "open",
                    or_(requests_t.c.not_before.is_(None), requests_t.c.not_before <= due_by))
             .order_by(requests_t.c.due_at, requests_t.c.id))
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    def pending_among(self, ids: Sequence[str], due_by: float, now: float
                      ) -> tuple[int, int]:
        """Of ``ids``: how many are still open and due by ``due_by``, and how many of
        those are leased now (being worked)."""
        r = requests_t
        left = held = 0
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 900):
                row = conn.execute(select(
                    func.count(),
                    func.count().filter(r.c.lease_until.is_not(None) & (r.c.lease_until >= now)),
                ).where(r.c.id.in_(list(ids[i : i + 900])), r.c.status == "open",
                        or_(r.c.not_before.is_(None), r.c.not_before <= due_by))).one()
                left += int(row[0])
                held += int(row[1])
        return left, held

    def request_states(self, ids: Sequence[str]
                       ) -> list[tuple[str, str, str, str | None]]:
        """(id, type, status, outcome) of each of ``ids`` that exists."""
        out: list[tuple[str, str, str, str | None]] = []
        r = requests_t
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 900):
                out.extend((row.id, row.type, row.status, row.outcome) for row in conn.execute(
                    select(r.c.id, r.c.type, r.c.status, r.c.outcome)
                    .where(r.c.id.in_(list(ids[i : i + 900])))))
        return out
