"""An operator's decisions on review items: which weak matches to act on, which to leave."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select

from ..ledger_tables import review_decisions_t
from .db import Database

__all__ = ["ReviewStore"]


class ReviewStore(Database):
    """The ``review_decisions`` table."""

    def record_decisions(self, rows: Sequence[dict[str, Any]]) -> None:
        """Record decisions in one transaction; a later decision on the same item replaces
        the earlier one (an operator may change their mind before the request acts)."""
        if not rows:
            return
        t = review_decisions_t
        with self.tx() as conn:
            for r in rows:
                conn.execute(delete(t).where(t.c.request_id == r["request_id"],
                                             t.c.system == r["system"],
                                             t.c.item == r["item"]))
            conn.execute(insert(t), list(rows))

    def decisions_for(self, request_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The decisions recorded for ``request_ids`` (oldest first)."""
        if not request_ids:
            return []
        t = review_decisions_t
        out: list[dict[str, Any]] = []
        with self.read() as conn:  # one round trip on PostgreSQL, no BEGIN/ROLLBACK
            ids = list(request_ids)
            for i in range(0, len(ids), 900):
                out.extend(dict(r._mapping) for r in conn.execute(
                    select(t).where(t.c.request_id.in_(ids[i:i + 900]))
                    .order_by(t.c.decided_at)))
        return out
