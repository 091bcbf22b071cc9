"""The receipt chain as stored: receipts and signed heads, appended under the chain lock."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from ..ledger_tables import receipts_t
from .db import Database, Lock, executemany

__all__ = ["ReceiptStore"]


class ReceiptStore(Database):
    """The ``receipts`` and ``receipt_heads`` tables."""

    def chain_head(self, conn: Connection) -> tuple[int, str]:
        """(last seq, last hash) inside a write transaction; locks the chain on PostgreSQL."""
        self.lock(conn, Lock.CHAIN)
        row = conn.execute(
            select(receipts_t.c.seq, receipts_t.c.hash).order_by(receipts_t.c.seq.desc()).limit(1)
        ).first()
        return (row.seq, row.hash) if row else (0, "0" * 64)

    def add_receipts(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            executemany(conn, insert(receipts_t), rows)

    def receipts(self, request_id: str | None = None) -> list[dict[str, Any]]:
        q = select(receipts_t).order_by(receipts_t.c.seq)
        if request_id is not None:
            q = q.where(receipts_t.c.request_id == request_id)
        with self.engine.connect() as conn:
            return [
                {"seq": r.seq, "body": json.loads(r.body), "hash": r.hash,
                 "signature": r.signature}
                for r in conn.execute(q)
            ]
