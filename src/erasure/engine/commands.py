"""A person's commands on a request's tasks: ``erasure confirm`` (a processor confirmed),
``erasure retry`` (resume blocked tasks, re-open failed ones, check held items again) and
``erasure close`` (end the request now).

Each holds the request's lease while it changes it, so a run working on the request at
the same time neither overwrites the change nor is overwritten, and writes through the
:class:`.writer.TaskWriter` like the runner: checked transitions, the outbox, the fence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import UsageError
from ..ledger import Ledger
from ..models import ItemStatus
from .tasks import Stage, TaskWork
from .work import Work, outcome_of
from .writer import TaskWriter, deliver

__all__ = ["RequestBusy", "TaskCommands"]


class TaskCommands:
    """Changes a person makes to tasks, between runs."""

    def __init__(self, ledger: Ledger, writer: TaskWriter, *, lease_seconds: float,
                 clock: Callable[[], float]) -> None:
        self.ledger, self.writer = ledger, writer
        self.lease_seconds = lease_seconds
        self.clock = clock

    def confirm(self, request_id: str, system: str, reference: str) -> None:
        """Record a processor's confirmation (Art. 19) of a task awaiting it: its items
        are done and the task is done; the request is due at once. ``reference`` was
        checked by the caller (the configured reference pattern)."""
        with self._held(request_id) as work:
            task = _task(work, system)
            if task.stage is not Stage.AWAITING_CONFIRMATION:
                raise UsageError(f"{request_id} in {system} is not awaiting confirmation "
                                 f"(it is {task.stage})")
            for ref in list(task.data.handles):
                if task.data.outcomes.get(ref) == ItemStatus.AWAITING_CONFIRMATION.value:
                    task.data.outcomes[ref] = ItemStatus.DONE.value
                    del task.data.handles[ref]
            task.summary.confirmation = reference
            task.summary.confirmed_at = self.clock()
            task.move(Stage.DONE, "confirmed", outcome=outcome_of(task))
            self._write(work)

    def retry(self, request_id: str, system: str | None = None) -> list[str]:
        """Resume the blocked tasks (due now), re-open the failed ones (at the state where
        they failed) and check the items kept under a hold again at the next run (a hold
        was lifted: no wait for ``hold_recheck_hours``) of an open request, or only
        ``system``'s; returns the systems resumed."""
        row = self.ledger.get_request(request_id)
        if row.status == "done":
            raise UsageError(f"request {request_id} has ended ({row.outcome}); its identifiers "
                             "are purged: record a new request")
        with self._held(request_id) as work:
            if system is not None:
                _task(work, system)
            reopened = []
            for name, t in work.tasks.items():
                if system not in (None, name):
                    continue
                if t.blocked is not None:
                    t.unblock("retry requested")
                    reopened.append(name)
                    continue
                if t.stage is Stage.ACTING and t.data.held:
                    t.unblock("retry requested: the held items are checked again")
                    reopened.append(name)
                    continue
                if t.outcome != "failed":
                    continue
                t.move(Stage(t.summary.failed_at or Stage.PENDING.value), "retry requested")
                t.outcome = None
                t.summary.clear_failure()
                # what the failed attempt left is asked again, not counted against the retry
                t.data.residue = []
                t.data.outcomes = {ref: s for ref, s in t.data.outcomes.items()
                                   if s != ItemStatus.FAILED.value}
                reopened.append(name)
            if not reopened:
                raise UsageError(f"request {request_id} has no blocked, failed or held task"
                                 + (f" in {system}" if system else ""))
            self._write(work)
        return reopened

    def close(self, request_id: str, note: str) -> None:
        """An operator ends an open request: every task not done fails with ``note`` (no
        personal data); the next run of the request writes its receipts and purges it."""
        row = self.ledger.get_request(request_id)
        if row.status == "done":
            raise UsageError(f"request {request_id} has ended ({row.outcome})")
        with self._held(request_id) as work:
            for t in work.tasks.values():
                if t.stage is Stage.DONE:
                    continue
                t.fail(note, "closed")
                t.summary.failed_at = t.stage.value
                t.move(Stage.DONE, "closed by an operator", outcome=outcome_of(t, failed=True))
            self._write(work)

    def cancel(self, request_id: str, note: str) -> None:
        """The requester withdraws a request before anything was done to their data: every
        task fails with ``note`` (no personal data), as :meth:`close` would; refused once
        any system has acted (exported, erased, restricted, told a processor)."""
        row = self.ledger.get_request(request_id)
        if row.status == "done":
            raise UsageError(f"request {request_id} has ended ({row.outcome})")
        with self._held(request_id, awaiting_approval=True) as work:
            acted = sorted(name for name, t in work.tasks.items()
                           if t.stage not in (Stage.PENDING, Stage.FOUND, Stage.DONE)
                           or t.data.outcomes or t.data.records or t.data.handles)
            if acted:
                raise UsageError(f"request {request_id} cannot be cancelled: "
                                 f"{', '.join(acted)} already acted on it")
            for t in work.tasks.values():
                if t.stage is Stage.DONE:
                    continue
                t.fail(note, "cancelled")
                t.summary.failed_at = t.stage.value
                t.move(Stage.DONE, "cancelled by the requester",
                       outcome=outcome_of(t, failed=True))
            self._write(work)

    def _write(self, work: Work) -> None:
        saved = self.writer.save([work], due_now=True)
        if saved.lost:
            raise UsageError(f"request {work.row.id} was taken over by a run; try again")
        deliver(self.ledger, self.writer.plugins)

    @contextmanager
    def _held(self, request_id: str, *, awaiting_approval: bool = False) -> Iterator[Work]:
        """The request's work, under its lease (refused while a run holds it);
        ``awaiting_approval``: also a request stopped at the approval gate."""
        got = self.ledger.claim(1, self.lease_seconds, self.clock(), only=[request_id],
                                due_by=float("inf"), awaiting_approval=awaiting_approval)
        if not got:
            row = self.ledger.get_request(request_id)
            if row.status == "open" or (awaiting_approval
                                        and row.status == "awaiting_approval"):
                raise RequestBusy(f"request {request_id} is being worked on by a run; "
                                  "try again when it has finished")
            raise UsageError(f"request {request_id} is {row.status.replace('_', ' ')}"
                             + (f" ({row.outcome})" if row.outcome else ""))
        try:
            yield self.writer.load(got)[0]
        finally:
            self.ledger.release([request_id])


def _task(work: Work, system: str) -> TaskWork:
    t = work.tasks.get(system)
    if t is None:
        raise UsageError(f"request {work.row.id} has no system {system!r}")
    return t


class RequestBusy(UsageError):
    """A run holds the request's lease now (its batch ends soon): try again then."""
