"""The ``mail`` connector: a subject's messages in an IMAP account, a Maildir or mbox files.

One settings model, three backends with the same operations (see ``imap.py``,
``maildir.py``, ``mbox.py``). Searches nominate candidates for a whole batch at once (IMAP:
OR searches; local: one byte scan); :class:`~erasure_mail.matching.Matcher` decides exactly.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import erasure
from erasure import (
    RETENTION_SUBJECT,
    Capability,
    Finding,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    Record,
    Subject,
    months_before,
)

from .base import FolderStats, Outcomes
from .imap import ImapBackend, quote
from .maildir import MaildirBackend
from .matching import ADDRESS_HEADERS, Matcher, addresses_of, parse_message, phone_forms
from .mbox import MboxBackend
from .scan import Needles
from .settings import MailSettings

__all__ = ["MailConnector"]

class MailConnector(erasure.Connector):
    """Finds, exports, erases and restricts a subject's mail; sweeps mail past retention."""

    name = "mail"
    version = "0.1.0"
    Settings = MailSettings
    capabilities = frozenset({Capability.FIND, Capability.EXPORT, Capability.DELETE,
                              Capability.RESTRICT, Capability.LOOKUP, Capability.RETENTION})
    #: phones are found in bodies only, so only with ``search_body`` (see ``__init__``)
    identifier_types = frozenset({IdentifierType.EMAIL, IdentifierType.PHONE})

    def __init__(self, system: str, settings: MailSettings) -> None:
        super().__init__(system, settings)
        self.settings: MailSettings = settings
        if not settings.search_body:
            self.identifier_types = frozenset({IdentifierType.EMAIL})  # type: ignore[misc]
        self.backend: Any
        if settings.backend == "imap":
            self.backend = ImapBackend(settings)
        elif settings.backend == "maildir":
            assert settings.path is not None
            self.backend = MaildirBackend(settings.path, settings.exclude_folders)
        else:
            assert settings.path is not None
            self.backend = MboxBackend(settings.path, settings.exclude_folders)

    def check(self) -> None:
        """The archive is there and writable; an IMAP server logs in and has UIDPLUS."""
        self.backend.check()

    def close(self) -> None:
        """Log out of the IMAP server."""
        self.backend.close()

    # find ------------------------------------------------------------------------------

    def _imap_terms(self, matcher: Matcher) -> list[list[bytes]]:
        terms = [[key, quote(addr)] for addr in matcher.emails
                 for key in (b"FROM", b"TO", b"CC", b"BCC")]
        if self.settings.search_body:
            terms += [[b"BODY", quote(addr)] for addr in matcher.emails]
            # TEXT: headers too (a number in the Subject line)
            terms += [[b"TEXT", quote(form)] for phone in matcher.phones
                      for form in phone_forms(phone, self.settings.phone_region)]
        return terms

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        """Every message from, to or about the subjects, in every folder not excluded."""
        matcher = Matcher(subjects, search_body=self.settings.search_body,
                          region=self.settings.phone_region)
        if not matcher:
            return
        if isinstance(self.backend, ImapBackend):
            found = self.backend.candidates(self._imap_terms(matcher),
                                            body=self.settings.search_body)
        else:
            found = self.backend.candidates(
                Needles(matcher.needles(), encoded_parts=self.settings.search_body,
                        phones=matcher.finder or None))
        for ref, _folder, raw in found:
            for m in matcher.matches(raw):
                yield Finding(self.system, m.subject, ref, "message", m.matched, m.fields)

    # export, lookup --------------------------------------------------------------------

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        """Each message as an .eml file in the package, with an index entry."""
        if not findings:
            return
        got = self.backend.fetch(sorted({f.ref for f in findings}))
        for f in findings:
            if f.ref in got:
                folder, raw = got[f.ref]
                yield Record(f, _record(folder, f.ref, raw))

    def lookup(self, findings: Sequence[Finding]) -> Iterator[Finding]:
        """The findings whose messages still exist, read by reference."""
        if not findings:
            return
        present = self.backend.fetch(sorted({f.ref for f in findings}))
        yield from (f for f in findings if f.ref in present)

    # delete, restrict ------------------------------------------------------------------

    @staticmethod
    def _outcomes(findings: Sequence[Finding], done: Outcomes) -> Iterator[ItemOutcome]:
        for f in findings:
            status, error = done.get(f.ref, (ItemStatus.FAILED, "no outcome"))
            yield ItemOutcome(f, status, error=error)

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        """Erase the messages for good (IMAP: UID EXPUNGE of exactly them) and verify."""
        if not findings:
            return iter(())
        return self._outcomes(findings, self.backend.delete(sorted({f.ref for f in findings})))

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        """Move the messages to ``restricted_folder``, or else give them the keyword."""
        if not findings:
            return iter(())
        refs = sorted({f.ref for f in findings})
        s = self.settings
        done = (self.backend.restrict_move(refs, s.restricted_folder) if s.restricted_folder
                else self.backend.restrict_keyword(refs, s.restricted_keyword))
        return self._outcomes(findings, done)

    def restricted(self, refs: Sequence[str]) -> set[str]:
        """The refs whose messages are restricted (keyword, or in the restricted folder)."""
        return self.backend.restricted(refs, self.settings.restricted_keyword,
                                       self.settings.restricted_folder)

    # retention -------------------------------------------------------------------------

    def retention_cutoff(self, now: datetime) -> datetime | None:
        """``retention_months`` before ``now``; None when the sweep is off."""
        months = self.settings.retention_months
        return months_before(now.astimezone(UTC), months) if months else None

    def expired(self, cutoff: datetime) -> Iterator[Finding]:
        """Every message dated before ``cutoff`` (arrival, or the Date header when
        ``retention_date = "header"``); ``kind`` is its folder."""
        by_header = self.settings.retention_date == "header"
        for ref, folder in self.backend.expired(cutoff.astimezone(UTC), by_header):
            yield Finding(self.system, RETENTION_SUBJECT, ref, folder, ())

    def oldest(self) -> datetime | None:
        """The date of the oldest message in any folder searched."""
        dates = [s.oldest for s in self.stats().values() if s.oldest]
        return min(dates, default=None)

    def stats(self) -> dict[str, FolderStats]:
        """Per folder: message count and oldest date."""
        return dict(self.backend.stats(self.settings.retention_date == "header"))

    def discover(self) -> str:
        """Folders, message counts, and which hold mail older than the retention."""
        now = datetime.now(UTC)
        cutoff = self.retention_cutoff(now)
        stats = self.stats()
        s = self.settings
        lines = [f"# mail archive ({s.backend}): {len(stats)} folders, "
                 f"{sum(v.count for v in stats.values())} messages",
                 f"# retention: {s.retention_months or 'off'} months by {s.retention_date}",
                 "# folder | messages | oldest | older than retention"]
        for folder, st in sorted(stats.items()):
            old = "-" if st.oldest is None else f"{st.oldest:%Y-%m-%d}"
            past = bool(cutoff and st.oldest and st.oldest < cutoff)
            lines.append(f"#   {folder!r} | {st.count} | {old} | {'YES' if past else 'no'}")
        lines += ["", "# every folder above is searched; exclude one only if it cannot hold "
                  "personal data", f"exclude_folders = {list(s.exclude_folders)!r}",
                  f"retention_months = {s.retention_months}",
                  f'retention_date = "{s.retention_date}"', ""]
        return "\n".join(lines).replace("'", '"')


def _record(folder: str, ref: str, raw: bytes) -> dict[str, Any]:
    """The index entry of one message, its .eml file attached (``_files``, base64)."""
    msg = parse_message(raw)
    name = f"{hashlib.sha256(ref.encode()).hexdigest()[:20]}.eml"
    data: dict[str, Any] = {
        "folder": folder,
        "message_id": str(msg.get("message-id", "") or ""),
        "date": str(msg.get("date", "") or ""),
        "subject": str(msg.get("subject", "") or ""),
        "size": len(raw),
        "file": name,
        "_files": {name: base64.b64encode(raw).decode("ascii")},
    }
    for header in ADDRESS_HEADERS:
        data[header] = sorted(addresses_of(msg, header))
    return data
