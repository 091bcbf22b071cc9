"""Phone numbers in free text, in the forms people write them.

``+44 113 000 0001``, ``0113-000-0001`` (with a default region), ``+44 (0)113 000 0001``,
``0044.113.000.0001``: a mail body, a line of an S3 object or a text column holds a
subject's number in any of them. Finding them is the phonenumbers library's
``PhoneNumberMatcher``; its parsed number is compared whole with the subject's E.164, so a
longer number that contains it (``+44 113 000 00012``) never matches.

The matcher is slow (a few hundred microseconds a line), so it runs only where a cheap test
says a number may be: the line's digits alone (every other byte taken out) must hold the
number's national significant number (``1130000001``), looked for in one Aho-Corasick pass
for a whole batch. Every written form of the number holds it, so the test never loses a
match; keeping only digits (not only separators) is a third faster and leaves the automaton
an eighth of the bytes.

Without a default region (``[erasure] default_phone_region``, or a system's
``phone_region``) only international forms count (``+`` or ``00``): ``030 123456`` names
different people in different countries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator

__all__ = ["PhoneFinder", "PhoneRegion", "check_region", "national_number", "national_phone",
           "squeeze", "written_forms", "written_numbers"]

#: Bytes taken out before the digits are compared: all but digits and newlines (separators
#: people write between digit groups, no-break spaces, words). Taking out more can only
#: join digits, never split them: the test stays a superset. Newlines stay, so lines keep
#: their numbers.
_NOT_DIGITS = bytes(c for c in range(256) if not 0x30 <= c <= 0x39 and c != 0x0A)


def squeeze(data: bytes) -> bytes:
    """The digits of ``data`` and its newlines: the digits of a written number meet."""
    return data.translate(None, _NOT_DIGITS)


def check_region(value: str) -> str:
    """A region code the phonenumbers library knows (``GB``, ``DE``), upper-cased; raise
    ValueError naming the problem otherwise."""
    import phonenumbers

    code = value.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError("not a phone region code (two letters, e.g. GB, DE, US)")
    return code


#: A config value: a region code for numbers written in national form.
PhoneRegion = Annotated[str, AfterValidator(check_region)]


def _parse(e164: str) -> Any:
    import phonenumbers

    return phonenumbers.parse(e164, None)


def written_forms(e164: str, region: str | None) -> list[str]:
    """The usual written forms of a number, for stores that search substrings only (IMAP
    SEARCH): E.164, ``00``, international and (in its own region) national format, each
    with spaces, dashes or dots."""
    import phonenumbers

    parsed = _parse(e164)
    fmt = phonenumbers.PhoneNumberFormat
    forms = [e164, "00" + e164[1:]]
    spaced = [phonenumbers.format_number(parsed, fmt.INTERNATIONAL)]
    if region is not None and phonenumbers.region_code_for_number(parsed) == region:
        national = phonenumbers.format_number(parsed, fmt.NATIONAL)
        spaced.append(national)
        forms.append("".join(c for c in national if c.isdigit()))
    spaced.append("00" + spaced[0][1:])
    for form in spaced:
        forms += [form, form.replace(" ", "-"), form.replace(" ", ".")]
    return list(dict.fromkeys(forms))


class PhoneFinder:
    """The phone numbers (E.164) of a batch, found in text in any written form."""

    def __init__(self, numbers: Iterable[str], region: str | None = None) -> None:
        self.region = region
        self.numbers = frozenset(numbers)
        self._own: dict[str, str | None] = {}
        by_key: dict[bytes, set[str]] = {}
        for number in self.numbers:
            split = _split_e164(number)
            if split is None:
                continue  # not a number: nothing can be written of it
            key, self._own[number] = split
            by_key.setdefault(key.encode("ascii"), set()).add(number)
        self._numbers = list(by_key.values())
        self._ac: Any = None
        if by_key:
            import ahocorasick_rs

            # the DFA form: about twice the NFA's speed (streams of every object)
            self._ac = ahocorasick_rs.BytesAhoCorasick(
                list(by_key), implementation=ahocorasick_rs.Implementation.DFA)

    def __bool__(self) -> bool:
        return self._ac is not None

    def _hits(self, squeezed: bytes) -> list[tuple[int, int, int]]:
        if self._ac is None:
            return []
        return list(self._ac.find_matches_as_indexes(squeezed, overlapping=True))

    def lines(self, block: bytes, literal: Mapping[str, int] | None = None
              ) -> dict[tuple[int, int], set[str]]:
        """(start, end) of each line of ``block`` (end excludes the newline) that may hold
        a number of the batch, with the numbers it may hold.

        ``literal``: how often each number occurs in ``block`` as written in E.164, lines
        the caller has found already. When the digits hold each number no more often than
        that, every occurrence is one of those and nothing is located (the common case:
        locating lines costs more than finding them)."""
        out: dict[tuple[int, int], set[str]] = {}
        if self._ac is None:
            return out
        squeezed = squeeze(block)
        hits = self._hits(squeezed)
        if not hits:
            return out
        if literal is not None:
            per_key = Counter(index for index, _s, _e in hits)
            if all(count <= sum(literal.get(n, 0) for n in self._numbers[index])
                   for index, count in per_key.items()):
                return out
        hits.sort(key=lambda h: h[1])
        t_line, o_line = 0, 0  # the start of one line, in the squeezed and the whole block
        t_end = _line_end(squeezed, 0)
        for index, start, _end in hits:
            if start > t_end:
                line = squeezed.rfind(b"\n", 0, start) + 1
                skipped = squeezed.count(b"\n", t_line, line)
                # the squeezed lines are never longer than the lines they come from
                o_line = _after_newlines(block, o_line, skipped, o_line + (line - t_line))
                t_line, t_end = line, _line_end(squeezed, line)
            out.setdefault((o_line, _line_end(block, o_line)), set()).update(
                self._numbers[index])
        return out

    def candidates(self, text: str) -> set[str]:
        """The numbers of the batch ``text`` may hold (its squeezed digits hold theirs)."""
        if self._ac is None:
            return set()
        hits = self._hits(squeeze(text.encode("utf-8", "surrogateescape")))
        return set().union(*(self._numbers[i] for i, _s, _e in hits))

    def find(self, text: str, among: Iterable[str] | None = None) -> set[str]:
        """The numbers of the batch (or of ``among``) written in ``text``, each checked
        whole: the matcher's parsed number equals it."""
        wanted = self.candidates(text)
        if among is not None:
            wanted &= set(among)
        if not wanted:
            return set()
        return {n for n in _matched(text, wanted, self.region, self._own) if n in wanted}

    def windows(self, text: str) -> Iterator[str]:
        """The lines of ``text`` that may hold a number of the batch."""
        data = text.encode("utf-8", "surrogateescape")
        for start, end in sorted(self.lines(data)):
            yield data[start:end].decode("utf-8", "surrogateescape")


def written_numbers(text: str, region: str | None = None) -> set[str]:
    """E.164 of every phone number written in ``text`` in a form people write
    (``+44 113 000 0042``, ``0044 113...``; with ``region`` national forms too): what a
    sample holds, counted by discover."""
    import phonenumbers

    fmt = phonenumbers.PhoneNumberFormat.E164
    return {phonenumbers.format_number(m.number, fmt)
            for m in phonenumbers.PhoneNumberMatcher(
                text, region, leniency=phonenumbers.Leniency.POSSIBLE)
            if region is not None or _international(m.raw_string, region)}


def national_number(e164: str) -> str | None:
    """The national significant number of an E.164 number (``1130000001`` of
    ``+441130000001``): the digits every written form of it holds. None if not E.164."""
    split = _split_e164(e164)
    return split[0] if split else None


def _split_e164(number: str) -> tuple[str, str] | None:
    """(national significant number, main region of its country code) of an E.164
    number, read from the prefix-free country codes (a parse costs 100x more: a batch
    holds a thousand numbers)."""
    import phonenumbers

    if not number.startswith("+") or not number[1:].isdigit():
        return None
    for size in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(number[1:1 + size]))
        if regions:
            return number[1 + size:], regions[0]
    return None


def _matched(text: str, wanted: set[str], region: str | None,
             own: dict[str, str | None]) -> Iterator[str]:
    """E.164 of the numbers the matcher reads in ``text``: with the default region (any
    form), and with each wanted number's own region (international forms only, so that
    ``0044`` is read as the international prefix where it is one)."""
    import phonenumbers

    fmt = phonenumbers.PhoneNumberFormat.E164
    regions: dict[str | None, bool] = {region: True} if region is not None else {}
    for number in wanted:
        regions.setdefault(own.get(number), False)
    for reg, national in regions.items():
        for m in phonenumbers.PhoneNumberMatcher(
                text, reg, leniency=phonenumbers.Leniency.POSSIBLE):
            if national or _international(m.raw_string, reg):
                yield phonenumbers.format_number(m.number, fmt)


def _international(raw: str, region: str | None) -> bool:
    """Whether a matched number was written with its country code (``+``, or the
    region's international prefix: ``00``, ``011``), not in a national form."""
    import re

    import phonenumbers

    head = raw.lstrip("([ ")
    if head.startswith("+"):
        return True
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region or "", None)
    prefix = getattr(meta, "international_prefix", None)
    digits = "".join(c for c in head if c.isdigit())
    return bool(prefix) and re.match(str(prefix), digits) is not None


def _line_end(data: bytes, start: int) -> int:
    end = data.find(b"\n", start)
    return len(data) if end < 0 else end


def _after_newlines(data: bytes, pos: int, count: int, guess: int) -> int:
    """The position just after the ``count``-th newline of ``data`` from ``pos``, given
    ``guess``, a position at or before it."""
    if count == 0:
        return pos
    guess = min(guess, len(data))
    seen = data.count(b"\n", pos, guess)
    if seen >= count:  # the last newline before the guess is the one
        return data.rfind(b"\n", pos, guess) + 1
    left, at = count - seen, guess
    while left > 8:  # leap over most of the rest: a few C calls, not a call a line
        avg = (at - pos) / max(count - left, 1)
        leap = min(len(data), at + int(avg * left * 0.8))
        seen = data.count(b"\n", at, leap)
        if seen >= left or leap == at:
            break
        left, at = left - seen, leap
    for _ in range(left):
        at = data.find(b"\n", at) + 1
    return at


def national_phone(value: str, region: str | None) -> str:
    """A phone as given, in E.164 when it is written in the national form of ``region``
    (``[erasure] default_phone_region``: ``0113 000 0002`` with GB is +441130000002);
    anything else is left for the identifier's own check to accept or refuse."""
    if any(c.isalpha() for c in value):
        return value  # letters: refused by the check (never read as keypad digits)
    import phonenumbers

    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_possible_number(parsed):
        if region is None and not value.strip().startswith("+"):
            from .errors import UsageError

            raise UsageError("phone: invalid phone number: a national form needs [erasure] "
                             "default_phone_region (or give it in international format, "
                             "e.g. +4930123456)")
        return value
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
