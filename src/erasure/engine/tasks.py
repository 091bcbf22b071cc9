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
It may also be *blocked* (a wrong password, a read-only store, a bad mapping): it keeps its
state and waits for an operator's ``erasure retry`` (or fails at the due-date margin).
``erasure retry`` re-opens a failed task at the state where it failed.
"""

from __future__ import annotations

import enum
import json
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from ..state import TaskData

__all__ = ["TRANSITIONS", "Stage", "TaskSummary", "TaskWork", "Transition"]


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
class TaskSummary:
    """What a task records about itself besides its state and findings: times, counts,
    the action chosen, errors. No personal data (errors are classified messages). Stored
    as JSON in ``tasks.summary`` (:meth:`to_text` / :meth:`from_text`, the one place it is
    serialised); a field at its default is left out of the text."""

    #: when the task was first searched (ISO, UTC)
    started_at: str | None = None
    #: findings, and findings not matched strongly (left for review), at the last find
    found: int | None = None
    review: int | None = None
    #: review items no operator decided on (``erasure review``): the system ends partial
    undecided: int = 0
    #: the action the rule chose (None: find only, or nothing to do)
    action: str | None = None
    #: when the first export call ran (the package's date)
    exported_at: str | None = None
    #: the state the task failed in (``erasure retry`` resumes there)
    failed_at: str | None = None
    #: searches again after the system renumbered its items
    refinds: int = 0
    #: when a processor was told (epoch seconds), and reminders sent since
    told_at: float | None = None
    reminders: int = 0
    #: None: not verified (yet); else whether the verification itself ran through
    verified: bool | None = None
    #: the identifier types verification searched with (the system's, of the strong ones)
    verified_types: list[str] = field(default_factory=list)
    #: places outside the connector's mapping where residue was found (table.column)
    unmapped_residue: list[str] = field(default_factory=list)
    #: connector calls per action
    attempts: dict[str, int] = field(default_factory=dict)
    #: waits after a failure (grows the backoff)
    deferrals: int = 0
    #: why items were not acted on ("not_supported: table orders has no restrict_column"),
    #: the connector's words, no personal data
    not_acted: list[str] = field(default_factory=list)
    #: why items are kept by a hold that may be lifted ("retained: legal hold on 1
    #: version(s) until released"), as of the last call that asked; the receipt lists them
    #: with ``not_acted``, ``erasure status`` while the task waits to check them again
    held: list[str] = field(default_factory=list)
    #: every error recorded, the last one and its class
    errors: list[str] = field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None
    #: the last failed call's error, also when it was only deferred (``erasure status``)
    last_error: str | None = None
    #: the error the task waits on an operator for (``erasure retry``); None: not blocked
    blocked: str | None = None
    #: the package written from the task's records (file name, SHA-256)
    package: str | None = None
    package_sha256: str | None = None
    #: the references (message ids) of the notices sent to a processor
    notices: list[str] = field(default_factory=list)
    #: a processor's confirmation (``erasure confirm``): its reference, and when (epoch s)
    confirmation: str | None = None
    confirmed_at: float | None = None
    #: a rectification's corrected fields, and those refused for review (names only)
    corrections: list[str] = field(default_factory=list)
    corrections_refused: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The fields that differ from their defaults."""
        out = {}
        for name, default in _SUMMARY_DEFAULTS:
            value = getattr(self, name)
            if value != default:
                out[name] = value
        return out

    def to_text(self) -> str:
        """The stored form (sorted keys: an unchanged summary is the same text)."""
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskSummary:
        """From a stored summary; keys this version does not know are ignored."""
        return cls(**{k: v for k, v in data.items() if k in _SUMMARY_FIELDS and v is not None})

    @classmethod
    def from_text(cls, text: str | None) -> TaskSummary:
        return cls.from_json(json.loads(text)) if text else cls()

    def clear_failure(self) -> None:
        """Forget the last failure (``erasure retry``); the history in ``errors`` stays."""
        self.error = self.error_kind = self.failed_at = None
        self.verified = None


_SUMMARY_DEFAULTS = [(f.name, f.default if f.default_factory is MISSING else f.default_factory())
                     for f in fields(TaskSummary)]
_SUMMARY_FIELDS = frozenset(name for name, _ in _SUMMARY_DEFAULTS)


@dataclass
class TaskWork:
    """One request in one system, in memory during a run."""

    request_id: str
    system: str
    stage: Stage
    outcome: str | None
    data: TaskData
    summary: TaskSummary = field(default_factory=TaskSummary)
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
        self.summary.blocked = None
        if outcome is not None:
            self.outcome = outcome

    def defer(self, until: float, cause: str, *, retrying: bool = True) -> None:
        """Stay in this state until ``until`` (epoch seconds). ``retrying``: a failure is
        waited out (counted in ``deferrals``, which grows the backoff); otherwise the task
        only waits its turn (a job being polled, a confirmation)."""
        self.events.append(Transition(self.request_id, self.system, self.stage, self.stage,
                                      cause))
        self.not_before = until
        self.summary.blocked = None
        if retrying:
            self.summary.deferrals += 1

    def block(self, until: float, cause: str, error: str) -> None:
        """Wait for an operator (``erasure retry``), at most until ``until``; ``error``
        (classified, no personal data) is what ``erasure status`` shows."""
        self.events.append(Transition(self.request_id, self.system, self.stage, self.stage,
                                      cause))
        self.not_before = until
        self.summary.blocked = error

    @property
    def blocked(self) -> str | None:
        """The error this task waits on an operator for, if it does."""
        return self.summary.blocked

    def unblock(self, cause: str) -> None:
        """An operator fixed the cause: due now (``erasure retry``)."""
        self.events.append(Transition(self.request_id, self.system, self.stage, self.stage,
                                      cause))
        self.not_before = None
        self.summary.blocked = None

    def due(self, now: float) -> bool:
        return self.stage is not Stage.DONE and (self.not_before is None
                                                  or self.not_before <= now)

    def attempt(self, action: str, n: int) -> None:
        attempts = self.summary.attempts
        attempts[action] = attempts.get(action, 0) + n

    def fail(self, message: str, kind: str) -> None:
        """Record an error (classified, no personal data) without changing state."""
        self.summary.errors.append(message)
        self.summary.error = message
        self.summary.error_kind = kind
