"""Per-system rate and concurrency limits shared by every process on the ledger.

The rate is a GCRA token bucket kept in one row per system (``system_limits.tat``, the
theoretical arrival time of the next call): one upsert per call reserves the caller's
slot and says how long to wait for it, so processes on any number of hosts together stay
under ``burst`` calls at once plus ``calls_per_second`` after. On PostgreSQL the time is
the server's (hosts' clocks may differ); on SQLite (one host) it is this host's.

Concurrency is a set of session-level advisory locks per system on PostgreSQL (a slot is
freed by the database when the process holding it dies: no slot is leaked by a kill -9);
on SQLite, whose ledger one host uses, a semaphore per system in this process.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Float, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..ledger_tables import system_limits_t
from .db import Database

__all__ = ["LimitStore", "SlotTimeout"]

#: the first key of the two-key advisory locks of concurrency slots (apart from ``Lock``)
SLOT_NAMESPACE = 4242100


class SlotTimeout(Exception):
    """No concurrency slot of the system came free before the call's deadline."""


class LimitStore(Database):
    """The ``system_limits`` table and the systems' concurrency slots."""

    _local_slots: dict[tuple[str, int], threading.BoundedSemaphore]
    _local_lock = threading.Lock()

    def reserve_call(self, system: str, calls_per_second: float, burst: int) -> float:
        """Reserve the next call of ``system``: the seconds to wait before making it."""
        interval = 1.0 / calls_per_second
        tat = system_limits_t.c.tat
        if self.is_sqlite:
            now: Any = literal(time.time(), Float)
            stmt: Any = sqlite_insert(system_limits_t)
            later = func.max(tat, now) + interval
        else:
            now = func.extract("epoch", func.statement_timestamp())
            stmt = pg_insert(system_limits_t)
            later = func.greatest(tat, now) + interval
        stmt = (stmt.values(system=system, tat=now + interval)
                .on_conflict_do_update(index_elements=[system_limits_t.c.system],
                                       set_={"tat": later})
                .returning(tat, now))
        with self.tx() as conn:
            next_at, at = conn.execute(stmt).one()
        # The call may start once at most ``burst`` reservations lie ahead of it.
        return max(0.0, float(next_at) - burst * interval - float(at))

    @contextmanager
    def concurrency_slot(self, system: str, slots: int, deadline: float,
                         poll: float = 0.05) -> Iterator[None]:
        """Hold one of ``slots`` slots of ``system`` while the block runs, waiting for one
        until ``deadline`` (``time.monotonic``); :class:`SlotTimeout` past it."""
        if self.is_sqlite:
            with self._local_slot(system, slots, deadline):
                yield
            return
        keys = [_slot_key(system, n) for n in range(slots)]
        with self.engine.connect() as conn:
            held = None
            try:
                while held is None:
                    for key in keys:
                        if conn.execute(text("SELECT pg_try_advisory_lock(:ns, :key)"),
                                        {"ns": SLOT_NAMESPACE, "key": key}).scalar():
                            held = key
                            break
                    conn.commit()
                    if held is None:
                        if time.monotonic() + poll > deadline:
                            raise SlotTimeout(system)
                        time.sleep(poll)
                yield
            finally:
                if held is not None:  # the pooled session must not keep the slot
                    conn.execute(text("SELECT pg_advisory_unlock(:ns, :key)"),
                                 {"ns": SLOT_NAMESPACE, "key": held})
                    conn.commit()

    @contextmanager
    def _local_slot(self, system: str, slots: int, deadline: float) -> Iterator[None]:
        with LimitStore._local_lock:
            if not hasattr(LimitStore, "_local_slots"):
                LimitStore._local_slots = {}
            sem = LimitStore._local_slots.setdefault(
                (system, slots), threading.BoundedSemaphore(slots))
        if not sem.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise SlotTimeout(system)
        try:
            yield
        finally:
            sem.release()

    def limit_state(self, system: str) -> float | None:
        """The stored theoretical arrival time of ``system``'s next call (for tests)."""
        with self.engine.connect() as conn:
            return conn.execute(select(system_limits_t.c.tat)
                                .where(system_limits_t.c.system == system)).scalar()


def _slot_key(system: str, n: int) -> int:
    """A stable signed 32-bit key for slot ``n`` of ``system`` (advisory lock ids)."""
    value = zlib.crc32(f"{system}\x1f{n}".encode())
    return value - (1 << 32) if value >= 1 << 31 else value
