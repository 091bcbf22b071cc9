"""Calendar arithmetic shared by the host and connectors (no dependencies of its own)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

__all__ = ["add_months", "days_left", "months_before", "utcnow"]


def utcnow() -> datetime:
    """Naive UTC now (SQLite keeps no time zone; every stored time is UTC)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def months_before(when: datetime, months: int) -> datetime:
    """The same day ``months`` earlier, clamped to the month's end (31 Mar - 1 = 28/29 Feb):
    the cutoff of a retention of ``months``."""
    month0 = when.month - 1 - months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    return when.replace(year=year, month=month,
                        day=min(when.day, calendar.monthrange(year, month)[1]))


def add_months(when: datetime, months: int) -> datetime:
    """Same day ``months`` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    return months_before(when, -months)


def days_left(due: datetime, now: datetime | None = None) -> int:
    """Whole days from ``now`` (default: now) until ``due``."""
    now = now or utcnow()
    return (due - now) // timedelta(days=1)
