"""Which of a batch of subjects' identifiers a piece of content holds, exactly.

Two stages. A multi-pattern automaton (Aho-Corasick, in Rust: ``ahocorasick_rs``) finds, in
one pass over the bytes, every place where any identifier of any subject of the batch may
occur; then each candidate line or record is re-checked field by field, so that
``bob@x.org`` never matches inside ``jimbob@x.org`` and ``+4930123456`` never inside
``+49301234567``. Emails, phones and IP addresses identify a person wherever they appear
(a field of their own or inside a message text); customer ids, user ids and names only in
the fields a rule maps to their type, and only as the whole value. Phones are also found in
the forms people write (``+44 113 000 0001``, ``0113-000-0001`` with a region): lines whose
digits hold the number's are candidates too, re-checked by :mod:`erasure.phonetext`.
"""

from __future__ import annotations

import csv
import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from erasure import Identifier, IdentifierType, Subject
from erasure.phonetext import PhoneFinder

__all__ = ["SELF_IDENTIFYING", "Matcher", "leaves"]

#: Types whose values say what they are: recognised in any field, and inside free text.
SELF_IDENTIFYING = frozenset({IdentifierType.EMAIL, IdentifierType.PHONE, IdentifierType.IP})
# Characters that continue an email address (local part or domain) or a number: a match
# next to one of them is part of a longer value (jimbob@x.org, +49301234567).
_EMAIL_BEFORE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._%+-'!#$&*/=?^`{|}~")
_EMAIL_AFTER = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_DIGITS = frozenset("0123456789")


class Matcher:
    """The identifiers of a batch of subjects, compiled into one automaton.

    ``fields`` maps record field names to identifier types (a rule's ``fields``);
    ``structured`` is false for plain text, where only self-identifying types are searched.
    """

    def __init__(self, subjects: Sequence[Subject], fields: Mapping[str, IdentifierType],
                 *, structured: bool = True, region: str | None = None) -> None:
        self.fields = dict(fields)
        mapped = set(self.fields.values()) if structured else set()
        self.owners: dict[Identifier, list[str]] = {}
        by_pattern: dict[bytes, list[Identifier]] = {}
        for s in subjects:
            for ident in s.identifiers:
                if ident.type not in SELF_IDENTIFYING and ident.type not in mapped:
                    continue
                self.owners.setdefault(ident, []).append(s.key)
                pattern = ident.value.lower().encode("utf-8")
                if ident not in by_pattern.setdefault(pattern, []):
                    by_pattern[pattern].append(ident)
        self._patterns = list(by_pattern.values())
        phones = [i for i in self.owners if i.type is IdentifierType.PHONE]
        #: phones in any written form (``region``: national forms too)
        self.phones = PhoneFinder((i.value for i in phones), region)
        self._phone_idents = {i.value: i for i in phones}
        self._ac: Any = None
        if by_pattern:
            import ahocorasick_rs

            # The DFA form: about twice the speed of the default NFA, for a few MB more
            # memory per thousand identifiers.
            self._ac = ahocorasick_rs.BytesAhoCorasick(
                list(by_pattern), implementation=ahocorasick_rs.Implementation.DFA)

    def __bool__(self) -> bool:
        return self._ac is not None

    def candidates(self, block: bytes) -> dict[tuple[int, int], set[Identifier]]:
        """Lines of ``block`` (start, end; end excludes the newline) where an identifier may
        occur, with the identifiers that may. ``block`` holds whole lines."""
        out: dict[tuple[int, int], set[Identifier]] = {}
        if self._ac is None:
            return out
        # Emails match case-insensitively: search lower-cased bytes (ASCII lowering keeps
        # every offset), re-check against the original text.
        hits = self._ac.find_matches_as_indexes(block.lower(), overlapping=True)
        last: tuple[int, int] | None = None
        literal: dict[str, int] = {}  # phones as written in E.164: their lines are here
        for index, start, end in hits:
            for ident in self._patterns[index]:
                if ident.type is IdentifierType.PHONE:
                    literal[ident.value] = literal.get(ident.value, 0) + 1
            if last is None or not last[0] <= start < last[1]:
                line_start = block.rfind(b"\n", 0, start) + 1
                line_end = block.find(b"\n", end)
                last = (line_start, len(block) if line_end < 0 else line_end)
            out.setdefault(last, set()).update(self._patterns[index])
        if self.phones:
            for line, numbers in self.phones.lines(block, literal).items():
                out.setdefault(line, set()).update(self._phone_idents[n] for n in numbers)
        return out

    def recheck(self, values: Iterable[tuple[str, str]],
                candidates: Iterable[Identifier]) -> set[Identifier]:
        """The candidates that ``values`` ((field name, text) pairs) really hold."""
        wanted = set(candidates)
        found: set[Identifier] = set()
        for name, text in values:
            if not wanted:
                break
            lowered = text.lower()
            for ident in list(wanted):
                if self._holds(name, text, lowered, ident):
                    found.add(ident)
                    wanted.discard(ident)
        return found

    def _holds(self, name: str, text: str, lowered: str, ident: Identifier) -> bool:
        itype = ident.type
        if itype is IdentifierType.PHONE:
            return (_token_in(lowered, ident.value, itype)
                    or bool(self.phones.find(text, (ident.value,))))
        if itype in SELF_IDENTIFYING:
            return _token_in(lowered, ident.value.lower(), itype)
        if self.fields.get(name) is not itype:
            return False
        if itype is IdentifierType.NAME:
            return " ".join(text.split()).casefold() == ident.value.casefold()
        return text.strip() == ident.value


def _token_in(text: str, value: str, itype: IdentifierType) -> bool:
    """Whether ``value`` occurs in ``text`` as a whole token of its type."""
    start = text.find(value)
    while start >= 0:
        end = start + len(value)
        before = text[start - 1] if start else ""
        after = text[end] if end < len(text) else ""
        after2 = text[end + 1] if end + 1 < len(text) else ""
        if itype is IdentifierType.EMAIL:
            # A trailing dot ends a sentence unless a domain label follows it.
            ok = (before not in _EMAIL_BEFORE and after not in _EMAIL_AFTER
                  and not (after == "." and after2 and after2 in _EMAIL_AFTER))
        elif itype is IdentifierType.PHONE:
            ok = before not in _DIGITS and before != "+" and after not in _DIGITS
        else:  # IP: no digit, dot-digit or colon-hex around it
            ok = (before not in _DIGITS and before not in ".:" and after not in _DIGITS
                  and after != ":" and not (after == "." and after2 in _DIGITS))
            ok = ok and _valid_ip(value)
        if ok:
            return True
        start = text.find(value, start + 1)
    return False


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def leaves(value: Any, name: str = "") -> Iterator[tuple[str, str]]:
    """(field name, text) of every scalar of a parsed JSON value; list items keep the name
    of the field that holds the list."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, str(key))
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, name)
    elif isinstance(value, str):
        yield name, value
    elif value is not None and not isinstance(value, bool):
        yield name, str(value)


def line_values(line: str, fmt: str, header: Sequence[str] | None) -> list[tuple[str, str]]:
    """(field, text) pairs of one line of ``fmt`` content; unparsable lines are text."""
    if fmt == "jsonl":
        try:
            return list(leaves(json.loads(line)))
        except ValueError:
            return [("", line)]
    if fmt == "csv" and header is not None:
        row = next(csv.reader([line]), [])
        return [(header[i] if i < len(header) else "", v) for i, v in enumerate(row)]
    return [("", line)]


def csv_header(line: str) -> list[str]:
    """The column names of a CSV header line."""
    return [c.strip() for c in next(csv.reader([line]), [])]
