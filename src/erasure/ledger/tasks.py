"""Tasks (one per request and system) and their recorded transitions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection

from ..ledger_tables import requests_t, task_events_t, tasks_t
from .db import Database, executemany, utcnow

__all__ = ["TaskRow", "TaskStore"]


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


class TaskStore(Database):
    """The ``tasks`` and ``task_events`` tables."""

    def tasks_for(self, request_ids: Sequence[str]) -> list[TaskRow]:
        out: list[TaskRow] = []
        with self.read() as conn:
            for i in range(0, len(request_ids), 900):
                q = select(tasks_t).where(tasks_t.c.request_id.in_(request_ids[i : i + 900]))
                out.extend(TaskRow(**r._mapping) for r in conn.execute(q))
        return out

    def ensure_tasks(self, request_ids: Sequence[str], systems: Iterable[str]
                     ) -> list[TaskRow]:
        """Create a pending task in each of ``systems`` for each request that has none
        there yet (recorded before tasks came with the request, or a system configured
        since); every task of the requests, as :meth:`tasks_for` would read them."""
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
            tasks.extend(TaskRow(request_id=row["request_id"], system=row["system"],
                                 stage=row["stage"], outcome=None, state=None, summary=None,
                                 started_at=None, finished_at=None) for row in new)
        return tasks

    def add_pending_tasks(self, conn: Connection, request_ids: Sequence[str],
                          systems: Iterable[str]) -> None:
        """A pending task in each of ``systems`` for each of ``request_ids`` (requests
        recorded in ``conn``'s transaction: a request is recorded with its tasks)."""
        names = list(systems)
        rows = [{"request_id": r, "system": s, "stage": "pending"}
                for r in request_ids for s in names]
        for i in range(0, len(rows), 5000):
            executemany(conn, insert(tasks_t), rows[i : i + 5000])

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
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def open_tasks(self, limit: int = 1000, requests: Sequence[str] | None = None
                   ) -> list[TaskRow]:
        """Tasks of open requests that are not done (for ``erasure status``), but for
        those no run has worked yet (pending, no summary: recorded with the request); only
        those of ``requests`` when given (the requests status shows)."""
        q = (select(tasks_t).join(requests_t, requests_t.c.id == tasks_t.c.request_id)
             .where(requests_t.c.status != "done", tasks_t.c.stage != "done",
                    or_(tasks_t.c.stage != "pending", tasks_t.c.summary.is_not(None)))
             .order_by(tasks_t.c.request_id, tasks_t.c.system).limit(limit))
        failed = (select(tasks_t).join(requests_t, requests_t.c.id == tasks_t.c.request_id)
                  .where(requests_t.c.status != "done", tasks_t.c.outcome == "failed")
                  .limit(limit))
        if requests is not None:
            q = q.where(tasks_t.c.request_id.in_(list(requests)))
            failed = failed.where(tasks_t.c.request_id.in_(list(requests)))
        with self.read() as conn:
            rows = {(r.request_id, r.system): r for q_ in (q, failed) for r in conn.execute(q_)}
        return [TaskRow(**r._mapping) for _k, r in sorted(rows.items())]
