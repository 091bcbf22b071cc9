"""Access and portability packages: what was made, when it goes, when it went."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from ..ledger_tables import packages_t
from .db import Database, utcnow

__all__ = ["PackageStore"]


class PackageStore(Database):
    """The ``packages`` table."""

    def add_packages(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Record packages made in the transaction that ends their requests (a package
        made again by a resumed run replaces its row)."""
        if not rows:
            return
        conn.execute(packages_t.delete().where(
            packages_t.c.request_id.in_([r["request_id"] for r in rows])))
        conn.execute(insert(packages_t), list(rows))

    def live_packages(self) -> list[dict[str, Any]]:
        """Packages not deleted yet, oldest first (file, expiry, subjects' hashes)."""
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(packages_t).where(packages_t.c.deleted_at.is_(None))
                .order_by(packages_t.c.made_at))]

    def packages(self, request_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every package (deleted ones too) of ``request_ids``, or of all requests."""
        q = select(packages_t).order_by(packages_t.c.made_at)
        if request_ids is not None:
            q = q.where(packages_t.c.request_id.in_(list(request_ids)))
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def package_delivered(self, request_id: str) -> dict[str, Any] | None:
        """Record that the package of ``request_id`` was given out (the first time counts)
        and return its row; None if it has none left. One transaction with
        :meth:`subject_erased`'s (the row's lock): a package whose subject is erased while
        it is fetched is deleted by one of the two, never kept."""
        live = (packages_t.c.request_id == request_id) & packages_t.c.deleted_at.is_(None)
        with self.tx() as conn:
            conn.execute(update(packages_t).where(live & packages_t.c.delivered_at.is_(None))
                         .values(delivered_at=utcnow()))
            row = conn.execute(select(packages_t).where(live)).first()
        return dict(row._mapping) if row is not None else None

    def subject_erased(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Mark the live packages ``ids`` as of a person now erased; the rows of those
        already delivered (to delete now). The others wait for delivery or expiry."""
        if not ids:
            return []
        live = packages_t.c.request_id.in_(list(ids)) & packages_t.c.deleted_at.is_(None)
        with self.tx() as conn:
            conn.execute(update(packages_t)
                         .where(live & packages_t.c.subject_erased_at.is_(None))
                         .values(subject_erased_at=utcnow()))
            return [dict(r._mapping) for r in conn.execute(
                select(packages_t).where(live & packages_t.c.delivered_at.is_not(None)))]

    def packages_deleted(self, ids: Sequence[str], why: str) -> None:
        """Record that the files of ``ids`` were deleted (their subjects' hashes go)."""
        if not ids:
            return
        with self.tx() as conn:
            conn.execute(update(packages_t).where(packages_t.c.request_id.in_(list(ids)))
                         .values(deleted_at=utcnow(), deleted_why=why, subjects=None))
