"""The receipt chain as stored: receipts and signed heads, appended under the chain lock."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from ..ledger_tables import receipt_heads_t, receipts_t
from .db import Database, Lock, executemany

__all__ = ["ReceiptStore"]


class ReceiptStore(Database):
    """The ``receipts`` and ``receipt_heads`` tables."""

    def chain_head(self, conn: Connection) -> tuple[int, str]:
        """(last seq, last hash) inside a write transaction; locks the chain on PostgreSQL."""
        self.lock(conn, Lock.CHAIN)
        return self.chain_end(conn)

    @staticmethod
    def chain_end(conn: Connection) -> tuple[int, str]:
        """(last seq, last hash) of the receipts, (0, zeros) for none; no lock."""
        row = conn.execute(
            select(receipts_t.c.seq, receipts_t.c.hash).order_by(receipts_t.c.seq.desc()).limit(1)
        ).first()
        return (row.seq, row.hash) if row else (0, "0" * 64)

    @staticmethod
    def last_signer(conn: Connection) -> tuple[int, str | None]:
        """(last seq, the key id that signed that receipt); (0, None) for no receipts."""
        row = conn.execute(
            select(receipts_t.c.seq, receipts_t.c.body).order_by(receipts_t.c.seq.desc())
            .limit(1)).first()
        return (row.seq, json.loads(row.body).get("key_id")) if row else (0, None)

    @staticmethod
    def chain_state(conn: Connection) -> tuple[tuple[int, str], dict[str, Any] | None,
                                               str | None]:
        """What guarding the chain reads, in one statement (one snapshot): the end of the
        receipts (as :meth:`chain_end`), the newest head (as :meth:`newest_head`) and the
        stored hash of the receipt that head ends at (None: no such receipt, or no head)."""
        r, h = receipts_t.c, receipt_heads_t.c

        def last(col: Any) -> Any:
            return select(col).order_by(r.seq.desc()).limit(1).scalar_subquery()

        def newest(col: Any) -> Any:
            return select(col).order_by(h.count.desc()).limit(1).scalar_subquery()

        row = conn.execute(select(
            last(r.seq).label("seq"), last(r.hash).label("last"),
            newest(h.body).label("h_body"), newest(h.hash).label("h_hash"),
            newest(h.signature).label("h_signature"),
            select(r.hash).where(r.seq == newest(h.count)).scalar_subquery().label("at"),
        )).one()
        end = (row.seq, row.last) if row.seq is not None else (0, "0" * 64)
        if row.h_hash is None:
            return end, None, None
        return end, {"body": json.loads(row.h_body), "hash": row.h_hash,
                     "signature": row.h_signature}, row.at

    @staticmethod
    def receipt_hash(conn: Connection, seq: int) -> str | None:
        """The hash of receipt ``seq``; None when there is none."""
        return conn.execute(select(receipts_t.c.hash).where(receipts_t.c.seq == seq)
                            ).scalar_one_or_none()

    @staticmethod
    def add_head(conn: Connection, head: dict[str, Any]) -> None:
        """Store a signed head (``{"body", "hash", "signature"}``, ``text``: its body's
        canonical JSON) in the caller's transaction, which holds the chain lock."""
        conn.execute(insert(receipt_heads_t), [{
            "count": head["body"]["count"], "last": head["body"]["last"],
            "body": head["text"], "hash": head["hash"], "signature": head["signature"]}])

    @staticmethod
    def newest_head(conn: Connection) -> dict[str, Any] | None:
        """The stored head of the highest count as ``{"body", "hash", "signature"}``."""
        row = conn.execute(select(receipt_heads_t)
                           .order_by(receipt_heads_t.c.count.desc()).limit(1)).first()
        if row is None:
            return None
        return {"body": json.loads(row.body), "hash": row.hash, "signature": row.signature}

    @staticmethod
    def heads(conn: Connection) -> list[dict[str, Any]]:
        """Every stored head, oldest (lowest count) first."""
        return [{"body": json.loads(r.body), "hash": r.hash, "signature": r.signature}
                for r in conn.execute(select(receipt_heads_t)
                                      .order_by(receipt_heads_t.c.count))]

    def receipts_in(self, conn: Connection, request_id: str | None = None
                    ) -> list[dict[str, Any]]:
        """Receipts as :meth:`receipts` reads them, in the caller's transaction."""
        q = select(receipts_t).order_by(receipts_t.c.seq)
        if request_id is not None:
            q = q.where(receipts_t.c.request_id == request_id)
        return [{"seq": r.seq, "body": json.loads(r.body), "hash": r.hash,
                 "signature": r.signature} for r in conn.execute(q)]

    def add_receipts(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            executemany(conn, insert(receipts_t), rows)

    def receipts(self, request_id: str | None = None) -> list[dict[str, Any]]:
        """Receipts (all, or one request's or sweep's) as ``{"seq", "body", "hash",
        "signature"}``, in chain order."""
        with self.read() as conn:
            return self.receipts_in(conn, request_id)
