"""Retention sweeps: one lease per system, and each system's last sweep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from ..leases import owner_alive
from ..ledger_tables import sweeps_t
from .db import Database, Lock

__all__ = ["SweepStore"]


class SweepStore(Database):
    """The ``sweeps`` table."""

    def claim_sweep(self, system: str, lease_seconds: float, now: float) -> bool:
        """Take the sweep lease of ``system`` (free, expired, or its owner died): True."""
        with self.tx() as conn:
            self.lock(conn, Lock.LEASES)
            row = conn.execute(select(sweeps_t).where(sweeps_t.c.system == system)).first()
            values = {"lease_owner": self.owner, "lease_until": now + lease_seconds}
            if row is None:
                conn.execute(insert(sweeps_t).values(system=system, **values))
                return True
            free = (row.lease_until is None or row.lease_until < now
                    or row.lease_owner == self.owner or not owner_alive(row.lease_owner))
            if free:
                conn.execute(update(sweeps_t).where(sweeps_t.c.system == system).values(**values))
            return free

    def renew_sweeps(self, systems: Sequence[str], lease_seconds: float, now: float) -> None:
        """Extend this process's sweep leases."""
        with self.tx() as conn:
            conn.execute(update(sweeps_t).where(sweeps_t.c.system.in_(list(systems)),
                                                sweeps_t.c.lease_owner == self.owner)
                         .values(lease_until=now + lease_seconds))

    def release_sweep(self, system: str) -> None:
        """Give up this process's sweep lease of ``system``."""
        with self.tx() as conn:
            conn.execute(update(sweeps_t).where(sweeps_t.c.system == system,
                                                sweeps_t.c.lease_owner == self.owner)
                         .values(lease_owner=None, lease_until=None))

    def record_sweep(self, conn: Connection, system: str, **values: Any) -> bool:
        """Record a finished sweep in the caller's transaction, fenced by the lease: False
        (nothing written) when another process holds it now."""
        res = conn.execute(update(sweeps_t).where(sweeps_t.c.system == system,
                                                  sweeps_t.c.lease_owner == self.owner)
                           .values(**values))
        return bool(res.rowcount)

    def sweeps(self) -> list[dict[str, Any]]:
        """Every system's last sweep (for ``erasure status``)."""
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(select(sweeps_t)
                                                           .order_by(sweeps_t.c.system))]
