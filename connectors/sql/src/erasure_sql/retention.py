"""The retention sweep for SQL tables that name a date column (``retention_column``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from erasure import RETENTION_SUBJECT, Finding, PermanentError, months_before

from .dberrors import db_errors
from .values import encode_ref

if TYPE_CHECKING:
    from .mapping import Mapping
    from .settings import SqlSettings

__all__ = ["RetentionMixin"]

class RetentionMixin:
    """``retention_cutoff``, ``expired`` and ``oldest`` of the connector contract."""

    system: str
    settings: SqlSettings
    _engine: sa.Engine

    def mapping(self) -> Mapping:
        raise NotImplementedError  # provided by SqlConnector

    def _dated_tables(self) -> list[tuple[str, sa.Table, sa.Column[Any]]]:
        out = []
        for name, tm in self.mapping().tables.items():
            column = tm.cfg.retention_column
            if column is None:
                continue
            if column not in tm.table.c:
                raise PermanentError(f"table {name}: no retention_column {column!r}")
            out.append((name, tm.table, tm.table.c[column]))
        return out

    def retention_cutoff(self, now: datetime) -> datetime | None:
        """``retention_months`` before ``now``; None without months or a dated table."""
        months = self.settings.retention_months
        if not months or not any(t.retention_column for t in self.settings.tables.values()):
            return None
        return months_before(now.astimezone(UTC), months)

    def expired(self, cutoff: datetime) -> Iterator[Finding]:
        """Rows whose retention column is before ``cutoff`` (stored as naive UTC);
        ``kind`` is the table."""
        naive = cutoff.astimezone(UTC).replace(tzinfo=None)
        m = self.mapping()
        out = []
        with db_errors("retention"), self._engine.connect() as conn:
            for name, table, column in self._dated_tables():
                pk = [table.c[c] for c in m.tables[name].pk]
                for row in conn.execute(sa.select(*pk).where(column < naive)):
                    out.append(Finding(self.system, RETENTION_SUBJECT,
                                       encode_ref(name, tuple(row)), name, ()))
        yield from out

    def oldest(self) -> datetime | None:
        """The earliest value of any retention column."""
        found = []
        with db_errors("retention"), self._engine.connect() as conn:
            for _name, _table, column in self._dated_tables():
                value = conn.execute(sa.select(sa.func.min(column))).scalar()
                if isinstance(value, str):  # SQLite keeps datetimes as text
                    value = datetime.fromisoformat(value)
                if isinstance(value, datetime):
                    found.append(value if value.tzinfo else value.replace(tzinfo=UTC))
        return min(found, default=None)
