"""The (request, system) task: its states, the transitions allowed between them, and the
record of every transition with its cause and time.

::

    pending ──find──> found ──act──> acting ──> verifying ──verify──> done
       │  ^             │              │  │          ^  │
       │  └─ re-find ───┤              │  └─> waiting (job in the system; polled)
       │   (approval)   │              │         └──────┘
       │                │              └──> awaiting_confirmation ──confirm──> done
       └──> done        └──> done (nothing to do, retained, not covered)
            (failed, not covered)

Any state but done may be *deferred*: it keeps its state and gets a ``not_before`` time
(a transient outage, a quota, a job not finished yet); ``erasure run`` picks it up when due.
``erasure retry`` re-opens a failed task at the state where it failed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..state import TaskData

__all__ = ["TRANSITIONS", "Stage", "TaskWork", "Transition"]


class Stage(enum.StrEnum):
    """Where a task is."""

    PENDING = "pending"
    FOUND = "found"
    ACTING = "acting"
    WAITING = "waiting"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    VERIFYING = "verifying"
    DONE = "done"


S = Stage
#: The transitions a task may make (a state to itself is a deferral or a new attempt).
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    S.PENDING: frozenset({S.PENDING, S.FOUND, S.DONE}),
    S.FOUND: frozenset({S.FOUND, S.PENDING, S.ACTING, S.VERIFYING, S.DONE}),
    # ACTING -> PENDING: the system renumbered its items since find (stale findings)
    S.ACTING: frozenset({S.ACTING, S.PENDING, S.WAITING, S.AWAITING_CONFIRMATION, S.VERIFYING,
                         S.DONE}),
    S.WAITING: frozenset({S.WAITING, S.VERIFYING, S.AWAITING_CONFIRMATION, S.DONE}),
    S.AWAITING_CONFIRMATION: frozenset({S.AWAITING_CONFIRMATION, S.DONE}),
    S.VERIFYING: frozenset({S.VERIFYING, S.DONE}),
    S.DONE: frozenset({S.PENDING, S.FOUND, S.ACTING, S.VERIFYING}),  # erasure retry
}


@dataclass(frozen=True)
class Transition:
    """One recorded move of a task; ``cause`` is a short text without personal data."""

    request_id: str
    system: str
    old: str
    new: str
    cause: str


@dataclass
class TaskWork:
    """One request in one system, in memory during a run."""

    request_id: str
    system: str
    stage: Stage
    outcome: str | None
    data: TaskData
    summary: dict[str, Any] = field(default_factory=dict)
    #: epoch seconds before which nothing is to be done (a deferral); None: due now
    not_before: float | None = None
    #: transitions made since the task was last saved
    events: list[Transition] = field(default_factory=list)
    #: what was last written (or loaded): an unchanged task is not written again
    saved: tuple[Any, ...] | None = field(default=None, repr=False)

    def move(self, new: Stage, cause: str, *, outcome: str | None = None) -> None:
        """Go to ``new`` (checked against :data:`TRANSITIONS`) and record why."""
        if new not in TRANSITIONS[self.stage]:
            raise RuntimeError(f"task cannot go from {self.stage} to {new} ({cause})")
        self.events.append(Transition(self.request_id, self.system, self.stage, new, cause))
        self.stage = new
        self.not_before = None
        if outcome is not None:
            self.outcome = outcome

    def defer(self, until: float, cause: str, *, retrying: bool = True) -> None:
        """Stay in this state until ``until`` (epoch seconds). ``retrying``: a failure is
        waited out (counted in ``deferrals``, which grows the backoff); otherwise the task
        only waits its turn (a job being polled, a confirmation)."""
        self.events.append(Transition(self.request_id, self.system, self.stage, self.stage,
                                      cause))
        self.not_before = until
        if retrying:
            self.summary["deferrals"] = self.summary.get("deferrals", 0) + 1

    def due(self, now: float) -> bool:
        return self.stage is not Stage.DONE and (self.not_before is None
                                                  or self.not_before <= now)

    def attempt(self, action: str, n: int) -> None:
        attempts = self.summary.setdefault("attempts", {})
        attempts[action] = attempts.get(action, 0) + n

    def fail(self, message: str, kind: str) -> None:
        """Record an error (classified, no personal data) without changing state."""
        self.summary.setdefault("errors", []).append(message)
        self.summary["error"] = message
        self.summary["error_kind"] = kind
