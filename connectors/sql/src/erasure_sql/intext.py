"""Emails and phones of a batch inside text values, checked a block of values at a time.

The deep scan streams the values the database's cheap test let through (see
:mod:`erasure_sql.deepscan`) and asks here which of the batch's emails and phones each one
holds. The values of a block are joined by newlines and searched in one pass: emails with an
Aho-Corasick automaton over the lower-cased bytes, phones with
:class:`erasure.phonetext.PhoneFinder` (digits only, then the phonenumbers matcher on the
values that may hold a number). Every hit is checked exactly: an email must stand alone
(``xbob@example.org`` and ``bob@example.org.uk`` are not ``bob@example.org``), a phone's
parsed number must be the subject's (``+44 113 000 00012`` is someone else's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from erasure.phonetext import PhoneFinder

__all__ = ["TextFinder"]

# Bytes that continue an address (local part before, domain after): a match next to one of
# them is part of a longer address. Bytes >= 0x80 are decoded and continue it when they are
# a letter or a digit (``ébob@x.org``), not when punctuation (curly quotes).
_BEFORE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._%+-'!#$&*/=?^`{|}~")
_AFTER = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")


class TextFinder:
    """The emails (lower-cased) and phones (E.164) of a batch, found inside text."""

    def __init__(self, emails: Iterable[str], phones: PhoneFinder) -> None:
        self.phones = phones
        self._emails = sorted({e.lower() for e in emails if "@" in e})
        self._ac: Any = None
        if self._emails:
            import ahocorasick_rs

            self._ac = ahocorasick_rs.BytesAhoCorasick(
                [e.encode("utf-8") for e in self._emails],
                implementation=ahocorasick_rs.Implementation.DFA)

    @property
    def emails(self) -> bool:
        """Whether the batch holds emails to look for."""
        return self._ac is not None

    def __bool__(self) -> bool:
        return self._ac is not None or bool(self.phones)

    def find(self, values: Sequence[str], text: str | None = None) -> dict[int, set[str]]:
        """Index in ``values`` -> the batch's emails and phones that value holds. ``text``:
        the values joined by newlines, each on one line, if the caller has it already."""
        out: dict[int, set[str]] = {}
        if not values or not self:
            return out
        if text is None:
            text = "\n".join(values)
            if text.count("\n") != len(values) - 1:  # a value of several lines: one line each
                text = "\n".join(v.replace("\n", " ") for v in values)
        if self._ac is not None:
            low = text.lower().encode("utf-8", "surrogateescape")  # lower() adds no newline
            hits = sorted(self._ac.find_matches_as_indexes(low, overlapping=True),
                          key=lambda h: h[1])
            for row, (index, start, end) in _rows(low, ((s, (i, s, e)) for i, s, e in hits)):
                if _alone(low, start, end):
                    out.setdefault(row, set()).add(self._emails[index])
        if self.phones:
            data = text.encode("utf-8", "surrogateescape")
            lines = sorted(self.phones.lines(data).items())
            for row, numbers in _rows(data, ((s, n) for (s, _e), n in lines)):
                found = self.phones.find(values[row], among=numbers)
                if found:
                    out.setdefault(row, set()).update(found)
        return out


def _rows(data: bytes, hits: Iterable[tuple[int, Any]]) -> Iterable[tuple[int, Any]]:
    """(line number, item) of items at byte offsets (ascending) of ``data``."""
    row, pos = 0, 0
    for start, item in hits:
        row += data.count(b"\n", pos, start)
        pos = start
        yield row, item


def _alone(data: bytes, start: int, end: int) -> bool:
    """Whether the address at ``data[start:end]`` is not part of a longer one."""
    if start > 0:
        before = data[start - 1]
        if before in _BEFORE or (before >= 0x80 and _alnum_before(data, start)):
            return False
    if end < len(data):
        after = data[end]
        if after in _AFTER or (after >= 0x80 and _alnum_at(data, end)):
            return False
        # a dot ends a sentence, or goes on with a longer domain (bob@example.org.uk)
        if after == 0x2E and end + 1 < len(data) and (
                data[end + 1] in _AFTER or (data[end + 1] >= 0x80 and _alnum_at(data, end + 1))):
            return False
    return True


def _alnum_at(data: bytes, pos: int) -> bool:
    char = data[pos:pos + 4].decode("utf-8", "ignore")[:1]
    return char.isalnum()


def _alnum_before(data: bytes, pos: int) -> bool:
    start = pos - 1
    while start > 0 and pos - start < 4 and 0x80 <= data[start] < 0xC0:
        start -= 1  # back to the first byte of the character
    char = data[start:pos].decode("utf-8", "ignore")
    return char.isalnum()
