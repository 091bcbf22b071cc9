"""The outbox: hook events written with the change they tell of, delivered after commit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from ..ledger_tables import outbox_t
from .db import Database, utcnow

__all__ = ["OutboxStore"]


class OutboxStore(Database):
    """The ``outbox`` table."""

    def add_events(self, conn: Connection, events: Sequence[tuple[str, str, dict[str, Any]]]
                   ) -> None:
        """Record hook events (event id, hook name, payload) in the caller's transaction."""
        if events:
            now = utcnow()
            conn.execute(insert(outbox_t), [
                {"id": eid, "hook": hook, "payload": json.dumps(payload, sort_keys=True),
                 "created_at": now} for eid, hook, payload in events])

    def undelivered(self, limit: int = 1000) -> list[tuple[str, str, dict[str, Any]]]:
        q = (select(outbox_t).where(outbox_t.c.delivered_at.is_(None))
             .order_by(outbox_t.c.created_at, outbox_t.c.id).limit(limit))
        with self.read() as conn:
            return [(r.id, r.hook, json.loads(r.payload)) for r in conn.execute(q)]

    def mark_delivered(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self.tx() as conn:
            for i in range(0, len(ids), 900):
                conn.execute(update(outbox_t).where(outbox_t.c.id.in_(ids[i : i + 900]))
                             .values(delivered_at=utcnow()))
