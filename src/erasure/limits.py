"""Per-system limits (``[systems.X] limits``) enforced around every connector call.

A limiter holds one of the system's concurrency slots and waits for its turn in the
system's rate before each call attempt; both are kept in the ledger
(:mod:`erasure.ledger.limits`), so every runner and worker sharing a ledger stays under
the system's limit together. Waiting is the host's: connectors never sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext

from .config import SystemLimits
from .errors import TransientError
from .ledger import Ledger, SlotTimeout

__all__ = ["LedgerLimiter", "limiters"]


class LedgerLimiter:
    """One system's limits, shared through the ledger."""

    def __init__(self, system: str, limits: SystemLimits, ledger: Callable[[], Ledger],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.system, self.limits = system, limits
        self._ledger, self._sleep = ledger, sleep

    @contextmanager
    def hold(self, deadline: float) -> Iterator[None]:
        """Run the block as one call of the system: within a concurrency slot and after
        its turn in the rate. Past ``deadline`` (``time.monotonic``) without a turn: a
        transient error (the task is retried, then deferred, like a 429)."""
        ledger = self._ledger()
        slot = (ledger.concurrency_slot(self.system, self.limits.concurrent, deadline)
                if self.limits.concurrent else nullcontext())
        try:
            with slot:
                if self.limits.calls_per_second:
                    wait = ledger.reserve_call(self.system, self.limits.calls_per_second,
                                               self.limits.burst)
                    if time.monotonic() + wait > deadline:
                        raise TransientError(f"the system's rate limit leaves no turn within "
                                             f"the call's deadline ({wait:.1f} s ahead)",
                                             retry_after=wait)
                    if wait > 0:
                        self._sleep(wait)
                yield
        except SlotTimeout:
            raise TransientError("every concurrency slot of the system stayed busy until "
                                 "the call's deadline") from None


def limiters(limits: Mapping[str, SystemLimits | None], ledger: Callable[[], Ledger]
             ) -> dict[str, LedgerLimiter]:
    """A limiter for each system that has limits configured."""
    return {name: LedgerLimiter(name, lim, ledger) for name, lim in limits.items()
            if lim is not None and (lim.calls_per_second or lim.concurrent)}
