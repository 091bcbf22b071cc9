"""What the three backends share: outcome maps, folder statistics, dates."""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from erasure import ItemStatus

__all__ = ["FolderStats", "Outcomes", "header_date"]

#: ref -> (status, classified error without personal data)
Outcomes = dict[str, tuple[ItemStatus, str | None]]


@dataclass(frozen=True)
class FolderStats:
    """How many messages a folder holds and when the oldest arrived (None: empty)."""

    count: int
    oldest: datetime | None


_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def header_date(raw: bytes) -> datetime | None:
    """The Date header of a message (or of its first bytes) in UTC; None if unreadable."""
    end = raw.find(b"\n\n")
    value = _HEADERS.parsebytes(raw if end < 0 else raw[: end + 1]).get("Date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
