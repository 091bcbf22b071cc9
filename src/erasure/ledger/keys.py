"""Request keys (crypto-shredding) and the key epoch, under the key lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from ..ledger_tables import ledger_meta_t, request_keys_t
from .db import Database, Lock, executemany

__all__ = ["KeyStore"]


class KeyStore(Database):
    """The ``request_keys`` table and the key epoch in ``ledger_meta``."""

    def key_state(self, conn: Connection, *, exclusive: bool = False) -> tuple[int, bool]:
        """(current key epoch, whether requests ended since it began), read under the
        rotation lock: shared to add keys, ``exclusive`` to rotate. On SQLite every write
        transaction already holds the database's write lock."""
        self.lock(conn, Lock.KEYS, shared=not exclusive)
        meta = dict(conn.execute(select(ledger_meta_t.c.name, ledger_meta_t.c.value).where(
            ledger_meta_t.c.name.in_(["key_epoch", "key_rotation_due"]))).all())
        return int(meta.get("key_epoch", "1")), meta.get("key_rotation_due") == "1"

    def _set_meta(self, conn: Connection, **values: str) -> None:
        # the two dialects' INSERT ... ON CONFLICT DO UPDATE, spelled the same way; one
        # statement for every name
        from sqlalchemy.dialects import postgresql, sqlite

        stmt = (sqlite.insert(ledger_meta_t) if self.is_sqlite
                else postgresql.insert(ledger_meta_t)).values(
            [{"name": k, "value": v} for k, v in values.items()])
        conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                                set_={"value": stmt.excluded.value}))

    def set_key_epoch(self, conn: Connection, epoch: int) -> None:
        """A rotation's end: the new epoch, nothing left to rotate."""
        self._set_meta(conn, key_epoch=str(epoch), key_rotation_due="0")

    def add_request_keys(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(rows), 5000):
            executemany(conn, insert(request_keys_t), rows[i : i + 5000])

    def request_keys(self, ids: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """{request id: (epoch, wrapped key)} of those of ``ids`` that have a key."""
        out: dict[str, tuple[int, bytes]] = {}
        with self.read() as conn:
            for i in range(0, len(ids), 900):
                out.update((r.request_id, (r.epoch, r.wrapped)) for r in conn.execute(
                    select(request_keys_t).where(
                        request_keys_t.c.request_id.in_(ids[i : i + 900]))))
        return out

    def request_keys_before(self, conn: Connection, epoch: int, limit: int | None = None
                            ) -> dict[str, tuple[int, bytes]]:
        """{request id: (epoch, wrapped key)} of the keys wrapped before ``epoch`` (at most
        ``limit`` of them)."""
        q = select(request_keys_t).where(request_keys_t.c.epoch < epoch)
        if limit is not None:
            q = q.limit(limit)
        return {r.request_id: (r.epoch, r.wrapped) for r in conn.execute(q)}

    def rewrap_request_keys(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            conn.execute(
                update(request_keys_t)
                .where(request_keys_t.c.request_id == bindparam("rid"))
                .values(epoch=bindparam("new_epoch"), wrapped=bindparam("new_wrapped")),
                [{"rid": r["request_id"], "new_epoch": r["epoch"],
                  "new_wrapped": r["wrapped"]} for r in rows])

    def drop_request_keys(self, conn: Connection, ids: Sequence[str], *,
                          locked: bool = False) -> None:
        """In the transaction that ends these requests; the epoch is then due to rotate.
        ``locked``: the caller holds the rotation lock already (and rotates now, or marks
        the rotation due itself)."""
        due = True
        if not locked:
            # the shared lock: a rotation running now sees the flag
            _epoch, due = self.key_state(conn)
        for i in range(0, len(ids), 900):
            conn.execute(request_keys_t.delete().where(
                request_keys_t.c.request_id.in_(ids[i : i + 900])))
        if not locked and not due:  # set already: runs that leave the rotation for later
            self.mark_rotation_due(conn)

    def mark_rotation_due(self, conn: Connection) -> None:
        """Requests ended: the key epoch is to be rotated (by the next :meth:`rotate`)."""
        self._set_meta(conn, key_rotation_due="1")
