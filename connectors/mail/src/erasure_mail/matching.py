"""Exact matching of a batch of subjects against messages.

Searches (IMAP SEARCH, the byte scan of an mbox) match substrings: ``bob@x.org`` is inside
``jimbob@x.org``. They only nominate candidates; this module decides, from the parsed
message: addresses in From/To/Cc/Bcc compared whole after RFC 2047 decoding, and (when body
search is on) addresses as whole tokens in the text parts, and phone numbers in the text
parts and header values in any written form (:mod:`erasure.phonetext`: ``0113 000 0001``,
``+44 (0)113-000-0001``), each compared whole with the subject's number.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import EmailMessage, Message

from erasure import Identifier, IdentifierType, Subject
from erasure.phonetext import PhoneFinder, written_forms

__all__ = ["ADDRESS_HEADERS", "Match", "Matcher", "addresses_of", "parse_message"]

#: The headers a subject's address is searched in (IMAP FROM, TO, CC, BCC).
ADDRESS_HEADERS = ("from", "to", "cc", "bcc")


@dataclass(frozen=True, slots=True)
class Match:
    """One subject's identifiers found on one message, and where."""

    subject: str
    matched: tuple[Identifier, ...]
    fields: tuple[str, ...]


def parse_message(raw: bytes) -> EmailMessage:
    """Parse a whole message (headers decoded lazily by the default policy)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _decoded(raw: str) -> str:
    """The header value unfolded, RFC 2047 encoded words decoded."""
    raw = re.sub(r"\r?\n(?=[ \t])", "", raw)
    try:
        return str(make_header(decode_header(raw)))
    except (LookupError, ValueError, UnicodeError):
        return raw  # an unknown charset: the address part is plain ASCII anyway


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
_ANGLE = re.compile(r"<([^<>]*)>")


def header_addresses(raw: str) -> set[str]:
    """The addr-specs of one address header value, lower-cased, read the way a mail
    client shows them: in a ``name <addr>`` entry only the last angle address counts, so a
    display name that spells an address (quoted, encoded or bare) is never taken for one."""
    text = _COMMENT.sub(" ", _QUOTED.sub('""', _decoded(raw)))
    text = re.sub(r"^[^:<>@,]*:", "", text.strip()).rstrip(";")  # a group "name: a, b;"
    found = set()
    for entry in text.split(","):
        angles = _ANGLE.findall(entry)
        addr = angles[-1] if angles else entry
        addr = addr.strip().split(":")[-1].strip().lower()  # source route "@a,@b:x@y"
        if "@" in addr and " " not in addr:
            found.add(addr)
    return found


def addresses_of(msg: Message, header: str) -> set[str]:
    """The addr-specs in every ``header`` line of ``msg`` (see :func:`header_addresses`)."""
    found: set[str] = set()
    for name, value in msg.raw_items():
        if name.lower() == header:
            text = str(value)
            if any("\udc80" <= c <= "\udcff" for c in text):
                # raw UTF-8 (SMTPUTF8) read as bytes: the parser kept them as surrogates
                text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            found |= header_addresses(text)
    return found


def _body_text(msg: EmailMessage) -> str:
    parts: list[str] = []
    for part in msg.walk():
        if part.get_content_maintype() != "text" or part.is_attachment():
            continue
        try:
            parts.append(str(part.get_content()))
        except (LookupError, ValueError, AssertionError):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                parts.append(payload.decode("utf-8", "replace"))
    return "\n".join(parts)


def phone_forms(e164: str, region: str | None = None) -> list[str]:
    """The literal forms a phone is searched as where only substrings can be (IMAP SEARCH):
    ``+4930123456``, ``004930123456``, the international and national formats with
    spaces, dashes or dots (see :func:`erasure.phonetext.written_forms`)."""
    return written_forms(e164, region)


def _header_text(msg: Message) -> Iterator[tuple[str, str]]:
    """(lower-cased name, decoded value) of every header of ``msg``."""
    for name, value in msg.raw_items():
        yield name.lower(), _decoded(str(value))


class Matcher:
    """The identifiers of a batch of subjects, ready to check messages against."""

    def __init__(self, subjects: Sequence[Subject], *, search_body: bool,
                 region: str | None = None) -> None:
        self.search_body = search_body
        self.emails: dict[str, list[tuple[str, Identifier]]] = {}
        self.phones: dict[str, list[tuple[str, Identifier]]] = {}
        for s in subjects:
            for ident in s.identifiers:
                if ident.type is IdentifierType.EMAIL:
                    # every form a message may carry: the domain in Unicode or in punycode
                    for form in ident.forms():
                        self.emails.setdefault(form, []).append((s.key, ident))
                elif ident.type is IdentifierType.PHONE and search_body:
                    self.phones.setdefault(ident.value, []).append((s.key, ident))
        self._body_re = self._compile_body()
        #: the batch's phones in every written form (body and headers)
        self.finder = PhoneFinder(self.phones, region)

    def __bool__(self) -> bool:
        return bool(self.emails or self.phones)

    def _compile_body(self) -> re.Pattern[str] | None:
        if not self.search_body or not self:
            return None
        alts = [re.escape(e) for e in sorted(self.emails, key=len, reverse=True)]
        # a whole address: no address character just before, none (nor ".x") just after
        parts = []
        if alts:
            parts.append(r"(?<![\w.+\-])(?P<e>" + "|".join(alts) + r")(?![\w\-]|\.\w)")
        digits = sorted({p[1:] for p in self.phones}, key=len, reverse=True)
        if digits:
            parts.append(r"(?<![\w+])(?:\+|00)(?P<p>" + "|".join(digits) + r")(?!\d)")
        return re.compile("|".join(parts), re.IGNORECASE)

    def needles(self) -> list[str]:
        """Lower-case literals a message must contain to be a candidate."""
        out = list(self.emails)
        for phone in self.phones:
            out.extend((phone, "00" + phone[1:]))  # other forms: the finder's digits test
        return out

    def match(self, msg: EmailMessage) -> list[Match]:
        """Every subject whose identifiers the message holds exactly, with the fields."""
        hits: dict[str, dict[Identifier, set[str]]] = {}

        def add(owners: Iterable[tuple[str, Identifier]], where: str) -> None:
            for key, ident in owners:
                hits.setdefault(key, {}).setdefault(ident, set()).add(where)

        for header in ADDRESS_HEADERS:
            for addr in addresses_of(msg, header):
                if addr in self.emails:
                    add(self.emails[addr], header)
        if self._body_re is not None:
            body = _body_text(msg)
            for m in self._body_re.finditer(body):
                if m.group("e") if "e" in m.re.groupindex else None:
                    add(self.emails.get(m.group("e").lower(), ()), "body")
                elif "p" in m.re.groupindex and m.group("p"):
                    add(self.phones.get("+" + m.group("p"), ()), "body")
            if self.finder:
                # The matcher runs only on the lines whose digits hold a number's.
                for line in self.finder.windows(body):
                    for number in self.finder.find(line):
                        add(self.phones[number], "body")
                for name, value in _header_text(msg):
                    for number in self.finder.find(value):
                        add(self.phones[number], name)
        return [Match(key, tuple(idents), tuple(sorted(set().union(*idents.values()))))
                for key, idents in hits.items()]

    def matches(self, raw: bytes) -> Iterator[Match]:
        """Parse ``raw`` and yield its matches."""
        yield from self.match(parse_message(raw))
