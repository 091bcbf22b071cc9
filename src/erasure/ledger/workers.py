"""Heartbeats of the distributed workers' processes (``worker_beats``): written by a timer
thread in each process of `erasure worker`, read by `erasure status` to tell a live worker
from one that was killed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Row, create_engine, delete, insert, select, update

from ..ledger_tables import work_batches_t, worker_beats_t
from .db import Database

__all__ = ["GONE_AFTER_BEATS", "WorkerStore", "process_state"]

#: a process that missed this many beats in a row is gone (killed, its host lost)
GONE_AFTER_BEATS = 3
#: rows of processes that have not beaten for this long are forgotten
_FORGET_SECONDS = 86_400.0


def process_state(row: Any, now: float) -> str:
    """``live``, ``stopped`` (ended cleanly) or ``gone`` (missed its beats): a
    ``worker_beats`` row at ``now`` (epoch seconds)."""
    if row.stopped_at is not None:
        return "stopped"
    if now - row.beat_at <= GONE_AFTER_BEATS * row.beat_seconds:
        return "live"
    return "gone"


class WorkerStore(Database):
    """The ``worker_beats`` table."""

    _beat_engine: Engine | None = None

    def _beats(self) -> Engine:
        # A connection of its own for the beats: a beat never waits for a connection of
        # the batch's pool (runner threads, lease renewals and the systems' concurrency
        # slots hold them), nor takes one from it. SQLite (one host, no workers) keeps the
        # ledger's engine, whose connections are set up for its locking.
        if self.is_sqlite:
            return self.engine
        if self._beat_engine is None:
            self._beat_engine = create_engine(self.engine.url, pool_size=1, max_overflow=0,
                                              pool_pre_ping=True)
        return self._beat_engine

    def beat(self, process: str, worker: str, interval: float, now: float) -> None:
        """``process`` of ``worker`` is alive at ``now``; it beats every ``interval``
        seconds. The first beat makes its row and forgets rows nobody beat for a day
        (but those of processes that held a batch they never finished: it is stalled)."""
        w = worker_beats_t
        with self._beats().begin() as conn:
            done = conn.execute(update(w).where(w.c.process == process, w.c.stopped_at.is_(None))
                                .values(beat_at=now, beat_seconds=interval))
            if done.rowcount or conn.execute(
                    select(w.c.process).where(w.c.process == process)).first():
                return  # beating, or marked stopped (a last beat after it stays stopped)
            b = work_batches_t
            conn.execute(delete(w).where(
                w.c.beat_at < now - _FORGET_SECONDS,
                w.c.process.not_in(select(b.c.process).where(
                    b.c.process.is_not(None), b.c.finished_at.is_(None)))))
            conn.execute(insert(w).values(process=process, worker=worker, beat_seconds=interval,
                                          started_at=now, beat_at=now, stopped_at=None))

    def stop_beats(self, now: float, *, process: str | None = None,
                   worker: str | None = None, since: float | None = None) -> None:
        """Mark as stopped cleanly at ``now`` the process ``process``, or every process of
        ``worker`` started since ``since`` (its pool, when the worker shuts down)."""
        w = worker_beats_t
        q = update(w).where(w.c.stopped_at.is_(None))
        if process is not None:
            q = q.where(w.c.process == process)
        if worker is not None:
            q = q.where(w.c.worker == worker)
        if since is not None:
            q = q.where(w.c.started_at >= since)
        with self._beats().begin() as conn:
            conn.execute(q.values(stopped_at=now, beat_at=now))

    def worker_beats(self) -> list[Row[Any]]:
        """Every process's row: process, worker, beat_seconds, started_at, beat_at,
        stopped_at."""
        with self.read() as conn:
            return list(conn.execute(select(worker_beats_t)).all())

    def close(self) -> None:
        if self._beat_engine is not None:
            self._beat_engine.dispose()
        super().close()
