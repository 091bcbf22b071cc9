"""What every step works with: the step context, a request's work, how calls are cut and
how a failed call moves its task (deferred or failed), and a finished task's outcome."""

from __future__ import annotations

import calendar
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..keys import KeyRing
from ..ledger import RequestRow
from ..models import ItemStatus, Outcome, RequestType, Subject
from ..state import KnownIdentifiers, RequestIntent
from ..systems import CallResult, System
from .isolation import run_isolated
from .rules import NOT_ACTED, Rule, rule_for, undecided, worst
from .tasks import Stage, TaskWork

__all__ = ["WAITS", "Decision", "StepContext", "Work", "failed_call", "find_call", "give_up_at",
           "limit", "outcome_of"]


@dataclass(frozen=True)
class StepContext:
    """What the steps need: the configuration, the systems and the keys."""

    config: Config
    systems: dict[str, System]
    keys: KeyRing
    #: epoch seconds now (tests move it); a deferral counts from the end of its call
    clock: Callable[[], float] = field(default=time.time)

    @property
    def host(self) -> Any:
        return self.config.host


@dataclass(frozen=True)
class Decision:
    """An operator's decision on a review item (``erasure review --include/--exclude``):
    who (a reference), when (ISO), the reason as stored (sealed; None: none given)."""

    decision: str  # include | exclude
    by: str
    at: str
    reason: str | None = None


@dataclass(eq=False)  # identity: works are kept in sets during a batch
class Work:
    """One request during a run."""

    row: RequestRow
    type: RequestType
    known: KnownIdentifiers
    tasks: dict[str, TaskWork]
    #: a rectification's corrections, an objection's scope
    intent: RequestIntent = field(default_factory=RequestIntent)
    #: an operator's decisions on review items: system -> item hash -> decision
    decisions: dict[str, dict[str, Decision]] = field(default_factory=dict)

    def rule(self, ctx: StepContext, system: str) -> Rule:
        return rule_for(self.type, ctx.systems[system].config.policy)

    def found_everywhere(self) -> bool:
        """No task still waits for its search: acting may start (the plan is complete)."""
        return all(t.stage is not Stage.PENDING for t in self.tasks.values())


def find_call(system: System, subjects: list[Subject], limit: tuple[int, int | None],
               action: str = "find") -> Callable[[], dict[str, CallResult]]:
    """One system's find over ``subjects``, in calls of whole subjects."""
    def call(batch: list[Subject]) -> CallResult:
        return system.call(lambda c: c.find(batch),
                           system.context(action, (s.key for s in batch)))

    def run() -> dict[str, CallResult]:
        return run_isolated(call, [(s.key, [s]) for s in subjects], limit, lambda f: f.subject)
    return run


def limit(ctx: StepContext, name: str) -> tuple[int, int | None]:
    """(most subjects, most items) per call of a system: ``batch_size`` subjects, and the
    connector's ``max_batch`` items if it declares one."""
    system = ctx.systems[name]
    return ctx.host.batch_size, system.cls.max_batch if system.cls else None


def failed_call(ctx: StepContext, w: Work, t: TaskWork, res: CallResult, now: float, *,
                 step: str) -> None:
    """A call that failed for this task, by its failure class (errors.py).

    Transient: the task waits for a later run (growing backoff, or as long as the system
    asked). Blocked: it waits for an operator (``erasure retry``) until the request's
    due-date margin. Permanent: it fails. Past the margin anything fails it: the request
    must end, and its receipt say why, before it is due.
    """
    retry = ctx.host.retry
    # The call may have taken long: a next try counts from its end, never from the past.
    now = max(now, ctx.clock())
    give_up = give_up_at(ctx, w)
    t.summary.last_error = res.error  # for `erasure status`; errors hold failures only
    if res.error_kind == "transient":
        n = t.summary.deferrals
        wait = min(retry.defer_initial * 2 ** n, retry.defer_max) * random.uniform(0.8, 1.2)
        if res.retry_after is not None:
            wait = max(res.retry_after, 0.0)
        if now + wait < give_up:
            t.defer(now + wait, f"{step} deferred: {res.error}")
            return
        t.fail(res.error or "error", "transient")
        t.fail("given up: the request's due date is near", "transient")
    elif res.error_kind == "blocked":
        if now < give_up:
            # Tried again at the margin once (an operator may have fixed it unannounced),
            # then failed there: see above.
            t.block(give_up, f"{step} blocked: {res.error}", res.error or "error")
            return
        t.fail(res.error or "error", "blocked")
        t.fail("given up: the request's due date is near", "blocked")
    else:
        t.fail(res.error or "error", res.error_kind or "permanent")
    t.summary.failed_at = t.stage.value
    t.move(Stage.DONE, f"{step} failed: {res.error}", outcome=outcome_of(t, failed=True))


#: failure classes that leave the task waiting (errors.py): only a permanent one fails it
WAITS = frozenset({"transient", "blocked"})


def verify_failed(ctx: StepContext, w: Work, t: TaskWork, first: CallResult,
                  second: CallResult, now: float) -> bool:
    """Count a verification's two reads and settle a task one of them failed: it waits
    (transient, blocked) or ends ``verification failed``. False when both reads worked."""
    t.attempt("verify", first.attempts + second.attempts)
    error = first if first.error else second if second.error else None
    if error is None:
        return False
    if error.error_kind in WAITS:
        failed_call(ctx, w, t, error, now, step="verify")
        return True
    t.summary.verified = False
    t.fail(f"verification failed: {error.error}", error.error_kind or "permanent")
    t.move(Stage.DONE, "verification failed", outcome=outcome_of(t))
    return True


def give_up_at(ctx: StepContext, w: Work) -> float:
    """Epoch seconds from which the request's tasks stop waiting (its due date less
    ``give_up_before_due_hours``): what still fails then fails, what is held stays held."""
    return _epoch(w.row) - ctx.host.retry.give_up_before_due_hours * 3600


def _epoch(row: RequestRow) -> float:
    """The request's due date as epoch seconds (stored as naive UTC)."""
    return float(calendar.timegm(row.due_at.timetuple()))


# outcome -------------------------------------------------------------------------------

def outcome_of(t: TaskWork, *, failed: bool = False) -> str:
    """The receipt's outcome of a task that is done: an item not acted on (failed, not
    supported, retained: :data:`.rules.NOT_ACTED`) makes it ``partial`` or ``retained``,
    and so does a review item nobody decided on (``partial``: it may be the person's, and
    it was left as it was: ``erasure review``; :data:`.rules.UNDECIDED_PARTIAL`)."""
    statuses = list(t.data.outcomes.values())
    not_done = len(t.data.actionable) - len(statuses)
    if (failed or t.summary.error) and not any(
            s != ItemStatus.FAILED.value for s in statuses):
        return Outcome.FAILED.value
    if t.summary.action is None:  # find only: nothing was to be acted on
        return Outcome.COMPLETED.value
    if t.data.residue or t.summary.error or not_done > 0 \
            or undecided(t.summary.action, t.summary.undecided):
        return Outcome.PARTIAL.value
    return worst(NOT_ACTED[s].value for s in statuses if s in NOT_ACTED)
