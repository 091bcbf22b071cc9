"""Retries for connector calls: tenacity with exponential backoff, jitter and retry_after.

Only :class:`~erasure.errors.TransientError` is retried. Each call has an attempt cap and a
deadline counted from its own start; when either is reached the last error is raised
unchanged, and the engine defers the task to a later run (it does not fail it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from .config import RetrySettings
from .errors import TransientError

__all__ = ["Attempts", "RetryBudget", "RetryPolicy", "is_transient"]

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Retry predicate: only errors a connector classified as transient."""
    return isinstance(exc, TransientError)


class _WaitRetryAfter(tenacity.wait.wait_base):
    """Honour a TransientError's retry_after, else exponential backoff with jitter."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return float(max(0.0, after))
        return self.fallback(retry_state)


@dataclass
class RetryBudget:
    """How long one system may keep failing within one run (``system_budget_seconds``),
    counted from its first transient failure; a success starts it afresh."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    #: monotonic time of the first failure since the last success; None: no failure
    since: float | None = None

    def failed(self) -> None:
        if self.since is None:
            self.since = self.clock()

    def succeeded(self) -> None:
        self.since = None

    @property
    def until(self) -> float | None:
        """When retrying ends (monotonic), or None while nothing failed."""
        return None if self.since is None else self.since + self.seconds

    def left(self) -> float:
        until = self.until
        return float("inf") if until is None else until - self.clock()

    @property
    def spent(self) -> bool:
        return self.left() <= 0


class _PastBudget(tenacity.stop.stop_base):
    """Stop when the system's budget ends before the next wait would ("before", like the
    deadline: a wait that would end past it is not started)."""

    def __init__(self, budget: RetryBudget | None) -> None:
        self.budget = budget

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.budget is not None and \
            self.budget.left() <= (retry_state.upcoming_sleep or 0.0)


@dataclass
class Attempts:
    """How many attempts a call took, filled in while it runs (for the receipt)."""

    count: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    """Retry settings of one system; the deadline counts from each call's start."""

    max_attempts: int
    deadline_seconds: float  # from the call's start; no new attempt starts after it
    initial_wait: float
    max_wait: float
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_settings(
        cls, s: RetrySettings, *, max_attempts: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RetryPolicy:
        return cls(
            max_attempts=max_attempts or s.max_attempts,
            deadline_seconds=s.deadline_seconds,
            initial_wait=s.initial_wait,
            max_wait=s.max_wait,
            sleep=sleep,
        )

    def call(self, fn: Callable[[], T], attempts: Attempts | None = None,
             budget: RetryBudget | None = None) -> T:
        """Run ``fn`` until it succeeds, raises a non-transient error, or the budget runs
        out: the attempt cap, the call's deadline, or the system's ``budget`` for the run."""
        counter = attempts if attempts is not None else Attempts()
        remaining = self.deadline_seconds

        def attempt() -> T:
            counter.count += 1
            try:
                result = fn()
            except TransientError:
                if budget is not None:
                    budget.failed()
                raise
            if budget is not None:
                budget.succeeded()
            return result

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            stop=tenacity.stop_after_attempt(self.max_attempts)
            # "before": a wait that would end past the deadline is not started.
            | tenacity.stop_before_delay(remaining) | _PastBudget(budget),
            wait=_WaitRetryAfter(
                tenacity.wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait)
            ),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(attempt)
