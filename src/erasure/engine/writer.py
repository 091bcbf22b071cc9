"""The one write path of tasks: loading a batch's works, and writing what changed in them
with their transitions (checked), their hook events (the outbox) and the request's next
due time, fenced by the leases this process holds.

The runner and the task commands (``erasure confirm``, ``erasure retry``) write through
it, so every task change reaches the ``erasure_task_changed`` hook the same way.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import callbacks
from ..ledger import Ledger, RequestRow
from ..ledger.api import CallbackTarget
from ..models import RequestType
from ..plugins import PluginHost
from ..receipts import Receipt
from ..shredding import RequestKeys
from ..state import TaskData, read_request_blob, request_blob
from .review import decided_on
from .tasks import TRANSITIONS, Stage, TaskSummary, TaskWork
from .work import Work

__all__ = ["Saved", "TaskWriter", "deliver", "next_due"]

log = logging.getLogger(__name__)

TASK_CHANGED = "erasure_task_changed"


@dataclass
class Saved:
    """What a fenced write kept: the works this process still holds, the ids of those it
    lost (another runner took their lease; nothing of them was written), and how many
    tasks ended failed in the write."""

    kept: list[Work] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    #: (request, system, error) of tasks that ended failed in the write
    failed: list[tuple[str, str, str]] = field(default_factory=list)


class TaskWriter:
    """Reads and writes the tasks of requests, for one process (its leases fence writes)."""

    def __init__(self, ledger: Ledger, ciphers: RequestKeys, plugins: PluginHost,
                 systems: Sequence[str]) -> None:
        self.ledger, self.ciphers, self.plugins = ledger, ciphers, plugins
        self.systems = list(systems)

    def watched(self, hook: str) -> bool:
        """Whether a plugin implements ``hook`` (an event nobody listens to is not written)."""
        return bool(getattr(self.plugins.hook, hook).get_hookimpls())

    def load(self, rows: Sequence[RequestRow]) -> list[Work]:
        """The works of ``rows``: their identifiers and tasks, decrypted (a pending task is
        made in each configured system a request has none in yet)."""
        ciphers = self.ciphers
        ciphers.load([r.id for r in rows])
        systems = set(self.systems)
        tasks: dict[str, dict[str, TaskWork]] = {r.id: {} for r in rows}
        for t in self.ledger.ensure_tasks([r.id for r in rows], self.systems):
            if t.system not in systems and t.stage != Stage.DONE:
                continue  # system removed from config since: nothing to run there
            state = ciphers.decrypt(t.request_id, t.state) if t.state else None
            task = tasks[t.request_id][t.system] = TaskWork(
                request_id=t.request_id, system=t.system, stage=Stage(t.stage),
                outcome=t.outcome, data=TaskData.from_bytes(t.system, t.request_id, state),
                summary=TaskSummary.from_text(t.summary), not_before=t.not_before)
            task.saved = (task.stage, t.outcome, t.not_before, t.summary, state)
        decisions: dict[str, list[dict[str, Any]]] = {}
        for d in self.ledger.decisions_for([r.id for r in rows]):
            decisions.setdefault(d["request_id"], []).append(d)
        works = []
        for r in rows:
            known, intent = read_request_blob(
                None if r.identifiers is None else ciphers.decrypt(r.id, r.identifiers))
            works.append(Work(row=r, type=RequestType(r.type), known=known, tasks=tasks[r.id],
                              intent=intent, decisions=decided_on(decisions.get(r.id, ()))))
        return works

    def save(self, works: Sequence[Work], *, identifiers: bool = False,
             due_now: bool = False) -> Saved:
        """Write the works' changes in one transaction fenced by the leases (see
        :meth:`write`)."""
        if not works:
            return Saved()
        targets: dict[str, CallbackTarget] = {}
        with self.ledger.fenced([w.row.id for w in works], targets=targets) as (conn, owned):
            failed = self.write(conn, [w for w in works if w.row.id in owned],
                                identifiers=identifiers, due_now=due_now, targets=targets)
        lost = [w.row.id for w in works if w.row.id not in owned]
        if lost:
            log.warning("%d request(s) dropped: their lease was taken over", len(lost))
        return Saved([w for w in works if w.row.id in owned], lost, failed)

    def write(self, conn: Any, works: Sequence[Work], *, identifiers: bool = False,
              purge: bool = False, due_now: bool = False,
              targets: Mapping[str, CallbackTarget] | None = None,
              tell_into: list[dict[str, Any]] | None = None) -> list[tuple[str, str, str]]:
        """The rows of ``works`` in the caller's (fenced) transaction: tasks that changed
        since they were loaded or last written, their transitions, an outbox event per
        transition while a plugin listens, and each request's next due time
        (``due_now``: due at once, for a person's command). ``identifiers`` writes the
        request's identifiers too; ``purge`` writes no state at all (the request ends).
        ``targets``: the works' callback targets read by the fence (else read here);
        ``tell_into``: receives the status callbacks' events instead of queueing them (the
        caller queues them with its own). Returns the tasks that ended failed:
        (request, system, error)."""
        enc = self.ciphers.encrypt
        task_rows, events, request_rows, outbox = [], [], [], []
        told: list[dict[str, Any]] = []  # status callbacks of tasks blocked or unblocked
        watching = self.watched(TASK_CHANGED)
        failed: list[tuple[str, str, str]] = []
        for w in works:
            for t in w.tasks.values():
                text = t.summary.to_text()
                state = None if purge else t.data.to_bytes()
                seen = (t.stage, t.outcome, t.not_before, text, state)
                if seen == t.saved and not t.events:
                    continue
                _check_transitions(t)
                was_blocked = t.saved is not None and bool(
                    TaskSummary.from_text(t.saved[3]).blocked)
                moved = any(e.old != e.new for e in t.events)
                if t.stage is not Stage.DONE and (
                        (t.summary.blocked and not was_blocked)
                        or (was_blocked and not t.summary.blocked and not moved)):
                    # a wait for an operator is a state change a ticket must hear of,
                    # though the task keeps its state (and so records no move)
                    told.append({"request_id": w.row.id, "event": "task_changed",
                                 "system": t.system, "state": "blocked"
                                 if t.summary.blocked else t.stage.value})
                t.saved = seen
                task_rows.append({
                    "request_id": w.row.id, "system": t.system, "stage": t.stage.value,
                    "outcome": t.outcome, "not_before": t.not_before, "summary": text,
                    "state": None if state is None else enc(w.row.id, state),
                })
                for e in t.events:
                    change = {"request_id": e.request_id, "system": e.system,
                              "old": e.old, "new": e.new, "cause": e.cause}
                    events.append(change)
                    if watching:
                        outbox.append((str(uuid.uuid4()), TASK_CHANGED, change))
                if t.outcome == "failed" and any(e.new == Stage.DONE for e in t.events):
                    failed.append((w.row.id, t.system, t.summary.error or t.summary.last_error
                                   or "failed"))
                t.events.clear()
            if purge:
                continue  # the request's end is written by its finish
            row: dict[str, Any] = {"id": w.row.id,
                                   "not_before": None if due_now else next_due(w)}
            if identifiers:
                row["identifiers"] = enc(w.row.id, request_blob(w.known, w.intent))
            request_rows.append(row)
        self.ledger.save_tasks(conn, task_rows, events)
        self.ledger.set_requests(conn, request_rows)  # one shape: the same keys in each row
        self.ledger.add_events(conn, outbox)
        # status callbacks of the requests that asked for them, whichever runner this is
        changes = [{"request_id": e["request_id"], "event": "task_changed",
                    "system": e["system"], "state": e["new"]}
                   for e in events if e["old"] != e["new"]] + told
        if tell_into is not None:
            tell_into.extend(changes)
        else:
            callbacks.queue(self.ledger, conn, changes, targets=targets)
        return failed


def _check_transitions(t: TaskWork) -> None:
    """The recorded moves of ``t`` are allowed and end where it is: a task whose state was
    set without :meth:`TaskWork.move` is never written."""
    stage = t.events[0].old if t.events else t.stage
    for e in t.events:
        if e.old != stage or (e.new != e.old and Stage(e.new) not in TRANSITIONS[Stage(e.old)]):
            raise RuntimeError(f"task {t.system}: recorded move {e.old} -> {e.new} "
                               f"does not follow {stage}")
        stage = Stage(e.new)
    if stage != t.stage:
        raise RuntimeError(f"task {t.system} is {t.stage} but its moves end in {stage}")


def next_due(w: Work) -> float | None:
    """When the request is next due (None: now): the earliest task that can go on. A found
    task waits for the request's search to complete, so it does not count while another
    task is still to be searched."""
    blocked = not w.found_everywhere()
    times = [t.not_before or 0.0 for t in w.tasks.values()
             if t.stage is not Stage.DONE and not (blocked and t.stage is Stage.FOUND)]
    earliest = min(times, default=0.0)
    return earliest or None


def deliver(ledger: Ledger, plugins: PluginHost) -> int:
    """Call the hooks of events not delivered yet; returns how many were delivered.

    An event is marked delivered after its hook returned (or failed: a failing hook is
    logged, never retried for ever). A crash in between delivers it again: hooks
    deduplicate on ``event_id``.
    """
    delivered = 0
    while batch := ledger.undelivered():
        for eid, hook, payload in batch:
            if hook == "erasure_receipt_written":
                args: dict[str, Any] = {"receipt": Receipt(
                    seq=payload["seq"], body=payload["body"], hash=payload["hash"],
                    signature=payload["signature"])}
            else:
                args = dict(payload)
            plugins.notify(hook, event_id=eid, **args)
        ledger.mark_delivered([eid for eid, _h, _p in batch])
        delivered += len(batch)
    return delivered
