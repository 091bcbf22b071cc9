"""IMAP (imapclient): OR searches per batch, exact re-checks, UIDPLUS expunges.

Refs are ``imap:<UIDVALIDITY>.<UID>:<folder>``. Safety rules, each a way to erase too little
or too much:

- SEARCH matches substrings: its hits are candidates, checked by :mod:`.matching`.
- ``\\Deleted`` alone erases nothing: delete is ``UID STORE +FLAGS (\\Deleted)`` then
  ``UID EXPUNGE`` of exactly those UIDs (UIDPLUS). CLOSE and plain EXPUNGE would also
  expunge mail someone else flagged: never sent. No UIDPLUS: PermanentError.
- A folder whose UIDVALIDITY changed since find was rebuilt: its UIDs may name other
  messages now. Its findings fail as stale (find again); nothing is deleted blindly.
- Search values are always quoted (or sent as literals), never spliced in raw.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from erasure import AuthError, ItemStatus, PermanentError, TransientError, current_call

from .base import FolderStats, Outcomes, header_date
from .settings import MailSettings

__all__ = ["ImapBackend", "or_tree", "quote"]

# imapclient logs every protocol line at DEBUG: search keys (addresses), headers, bodies.
# Personal data must stay out of logs, whatever level an application turns on.
logging.getLogger("imapclient").setLevel(logging.INFO)

#: search terms per SEARCH command: Dovecot reads command lines up to 64 KiB
TERMS_PER_SEARCH = 400


def quote(value: str) -> bytes:
    """An IMAP quoted string, or raw UTF-8 that imapclient sends as a literal; refuses
    values no quoted string or literal of a search key can carry (CR, LF, NUL)."""
    if any(c in value for c in "\r\n\0"):
        raise PermanentError("an identifier holds line breaks: not searchable")
    data = value.encode("utf-8")
    if any(b > 0x7F for b in data):
        return data  # 8-bit: imapclient sends it as a literal {n}
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def or_tree(terms: Sequence[list[bytes]]) -> list[bytes]:
    """One search key matching any of ``terms``: OR in prefix form, a balanced tree (depth
    log n, no parentheses: ``OR OR k1 k2 OR k3 k4``)."""
    if len(terms) == 1:
        return list(terms[0])
    mid = len(terms) // 2
    return [b"OR", *or_tree(terms[:mid]), *or_tree(terms[mid:])]


class ImapBackend:
    """One IMAP account; a connection opened on first use and kept until close."""

    def __init__(self, settings: MailSettings) -> None:
        self.s = settings
        self._client: Any = None
        self.selected: str | None = None

    # connection ------------------------------------------------------------------------

    def client(self) -> Any:
        """The logged-in client; connection errors are TransientError, login AuthError.

        Every socket operation is bounded by the settings' ``timeout`` and by the time left
        to the host's call (a frozen server never holds a call past its deadline)."""
        if self._client is not None:
            self._bound(self._client)
            return self._client
        from imapclient import IMAPClient
        from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

        s = self.s
        assert s.host is not None and s.username is not None and s.password is not None
        context = ssl.create_default_context()
        try:
            c = IMAPClient(s.host, port=s.imap_port, ssl=s.security == "tls",
                           ssl_context=context, timeout=self._timeout())
            if s.security == "starttls":
                c.starttls(context)
        except (OSError, ssl.SSLError, IMAPClientError) as exc:
            # IMAPClientError here: a greeting cut off or garbled (a server accepting and
            # closing connections, a proxy in front of a dead one): it comes back or not.
            raise TransientError(f"cannot connect to the IMAP server ({type(exc).__name__})",
                                 retry_after=60) from None
        try:
            c.login(s.username, s.password.get_secret_value())
        except LoginError:
            raise AuthError("IMAP login refused (check username and password)",
                            system_wide=True) from None
        except (OSError, ssl.SSLError, IMAPClientAbortError) as exc:
            raise TransientError(f"IMAP connection lost ({type(exc).__name__})") from None
        c.normalise_times = False  # INTERNALDATE with its zone, not naive local time
        self._client = c
        return c

    def _timeout(self) -> float:
        """Seconds a socket operation may take: the settings' ``timeout``, at most the time
        left to the host's call (at least a tenth of a second)."""
        try:
            left = current_call().deadline - time.monotonic()
        except RuntimeError:  # not inside a host's call (check, discover)
            return self.s.timeout
        return max(0.1, min(self.s.timeout, left))

    def _bound(self, c: Any) -> None:
        sock = c.socket()
        if sock is not None:
            sock.settimeout(self._timeout())

    def close(self) -> None:
        """Log out (never CLOSE: it would expunge other people's flagged mail)."""
        c, self._client = self._client, None
        if c is not None:
            try:
                c.logout()
            except Exception:  # noqa: S110 - a dead connection has nothing to release
                pass

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the client; classify network failures (the connection is dropped)."""
        from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

        try:
            return fn(*args, **kwargs)
        except (TimeoutError, IMAPClientAbortError, OSError, ssl.SSLError) as exc:
            self._drop()
            raise TransientError(f"IMAP connection failed ({type(exc).__name__})",
                                 retry_after=30) from None
        except IMAPClientError as exc:
            # server said NO/BAD: the text may echo our arguments, so it is not kept
            raise PermanentError(f"IMAP server refused a command ({type(exc).__name__})") \
                from None

    def _drop(self) -> None:
        c, self._client = self._client, None
        self.selected = None
        if c is not None:
            try:
                c.shutdown()
            except Exception:  # noqa: S110 - already broken
                pass

    def check(self) -> None:
        """Login works and the server has UIDPLUS (exact expunge)."""
        self._require_uidplus()

    def _require_uidplus(self) -> None:
        c = self.client()
        if not self._run(c.has_capability, "UIDPLUS"):
            raise PermanentError("the IMAP server lacks UIDPLUS: erasure cannot expunge only "
                                 "the subject's messages (UID EXPUNGE), so it deletes nothing")

    # folders ---------------------------------------------------------------------------

    def folders(self) -> list[str]:
        """Every selectable folder, less the excluded ones."""
        c = self.client()
        out = []
        for flags, _delim, name in self._run(c.list_folders):
            lowered = {f.lower() if isinstance(f, bytes) else f.encode().lower() for f in flags}
            if b"\\noselect" in lowered or b"\\nonexistent" in lowered:
                continue
            if name not in self.s.exclude_folders:
                out.append(name)
        return out

    def _select(self, folder: str, *, readonly: bool) -> int:
        """Select ``folder``; its UIDVALIDITY."""
        c = self.client()
        info = self._run(c.select_folder, folder, readonly=readonly)
        self.selected = folder
        return int(info[b"UIDVALIDITY"])

    @staticmethod
    def ref(folder: str, validity: int, uid: int) -> str:
        return f"imap:{validity}.{uid}:{folder}"

    @staticmethod
    def parse(ref: str) -> tuple[str, int, int]:
        """(folder, UIDVALIDITY, UID) of a ref."""
        kind, ids, folder = ref.split(":", 2)
        if kind != "imap":
            raise PermanentError("not an IMAP finding")
        validity, uid = ids.split(".")
        return folder, int(validity), int(uid)

    def _by_folder(self, refs: Iterable[str]) -> dict[str, dict[int, list[tuple[int, str]]]]:
        """folder -> UIDVALIDITY -> [(uid, ref)]."""
        out: dict[str, dict[int, list[tuple[int, str]]]] = {}
        for ref in refs:
            folder, validity, uid = self.parse(ref)
            out.setdefault(folder, {}).setdefault(validity, []).append((uid, ref))
        return out

    # find, fetch -----------------------------------------------------------------------

    def search(self, terms: Sequence[list[bytes]]) -> list[int]:
        """UIDs in the selected folder matching any term, in few SEARCH commands."""
        c = self.client()
        uids: set[int] = set()
        for i in range(0, len(terms), TERMS_PER_SEARCH):
            args = [b"CHARSET", b"UTF-8", *or_tree(terms[i : i + TERMS_PER_SEARCH])]
            data = self._run(c._raw_command_untagged, b"SEARCH", args)  # noqa: SLF001
            from imapclient.response_parser import parse_message_list

            uids.update(parse_message_list(data))
        return sorted(uids)

    def candidates(self, terms: Sequence[list[bytes]], *, body: bool
                   ) -> Iterator[tuple[str, str, bytes]]:
        """(ref, folder, raw) of every message SEARCH nominates: headers only unless the
        body is to be checked too."""
        part = b"BODY[]" if body else b"BODY[HEADER]"
        c = self.client()
        for folder in self.folders():
            validity = self._select(folder, readonly=True)
            uids = self.search(terms)
            for i in range(0, len(uids), self.s.fetch_chunk):
                got = self._run(c.fetch, uids[i : i + self.s.fetch_chunk],
                                [b"BODY.PEEK[]" if body else b"BODY.PEEK[HEADER]"])
                for uid, data in sorted(got.items()):
                    if part in data:
                        yield self.ref(folder, validity, uid), folder, data[part]

    def fetch(self, refs: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """(folder, raw) of each ref that still exists (same UIDVALIDITY)."""
        c = self.client()
        out = {}
        for folder, by_validity in self._by_folder(refs).items():
            validity = self._select(folder, readonly=True)
            items = by_validity.get(validity, [])
            refs_of = dict(items)
            uids = sorted(refs_of)
            for i in range(0, len(uids), self.s.fetch_chunk):
                got = self._run(c.fetch, uids[i : i + self.s.fetch_chunk], [b"BODY.PEEK[]"])
                for uid, data in got.items():
                    if uid in refs_of and b"BODY[]" in data:
                        out[refs_of[uid]] = (folder, data[b"BODY[]"])
        return out

    # delete, restrict ------------------------------------------------------------------

    def _present(self, uids: list[int]) -> set[int]:
        c = self.client()
        present: set[int] = set()
        for i in range(0, len(uids), self.s.expunge_chunk):
            chunk = uids[i : i + self.s.expunge_chunk]
            present.update(self._run(c.search, [b"UID", _uid_set(chunk)]))
        return present

    def _stale(self, by_validity: dict[int, list[tuple[int, str]]], validity: int,
               out: Outcomes) -> list[tuple[int, str]]:
        """Mark findings of another UIDVALIDITY stale; the current ones."""
        for v, items in by_validity.items():
            if v != validity:
                for _uid, ref in items:
                    out[ref] = (ItemStatus.STALE, "stale finding: the folder was rebuilt "
                                "(UIDVALIDITY changed) since find; find again")
        return by_validity.get(validity, [])

    def delete(self, refs: Iterable[str]) -> Outcomes:
        """Flag exactly these UIDs \\Deleted and UID EXPUNGE them, in chunks; verify."""
        self._require_uidplus()
        c = self.client()
        out: Outcomes = {}
        for folder, by_validity in self._by_folder(refs).items():
            validity = self._select(folder, readonly=False)
            items = self._stale(by_validity, validity, out)
            uids = sorted({uid for uid, _r in items})
            present = self._present(uids)
            for i in range(0, len(uids), self.s.expunge_chunk):
                chunk = [u for u in uids[i : i + self.s.expunge_chunk] if u in present]
                if chunk:
                    self._run(c.add_flags, _uid_set(chunk), [b"\\Deleted"], silent=True)
                    self._run(c.uid_expunge, _uid_set(chunk))
            left = self._present(sorted(present))
            for uid, ref in items:
                out[ref] = ((ItemStatus.FAILED, "message still there after UID EXPUNGE")
                            if uid in left else (ItemStatus.DONE, None) if uid in present
                            else (ItemStatus.ALREADY_DONE, None))
        return out

    def restrict_keyword(self, refs: Iterable[str], keyword: str) -> Outcomes:
        """Add the keyword to exactly these UIDs."""
        c = self.client()
        out: Outcomes = {}
        for folder, by_validity in self._by_folder(refs).items():
            validity = self._select(folder, readonly=False)
            items = self._stale(by_validity, validity, out)
            uids = sorted({u for u, _r in items})
            flags = self._run(c.get_flags, uids) if uids else {}
            kw = keyword.encode()
            todo = [u for u in uids if u in flags and kw not in flags[u]]
            for i in range(0, len(todo), self.s.expunge_chunk):
                self._run(c.add_flags, todo[i : i + self.s.expunge_chunk], [kw], silent=True)
            for uid, ref in items:
                out[ref] = ((ItemStatus.FAILED, "message no longer exists") if uid not in flags
                            else (ItemStatus.DONE, None) if uid in todo
                            else (ItemStatus.ALREADY_DONE, None))
        return out

    def restrict_move(self, refs: Iterable[str], target: str) -> Outcomes:
        """UID MOVE to the restricted folder (or UID COPY, then the exact delete)."""
        c = self.client()
        out: Outcomes = {}
        if target not in self.folders():
            self._run(c.create_folder, target)
        for folder, by_validity in self._by_folder(refs).items():
            if folder == target:
                out.update({r: (ItemStatus.ALREADY_DONE, None)
                            for items in by_validity.values() for _u, r in items})
                continue
            validity = self._select(folder, readonly=False)
            items = self._stale(by_validity, validity, out)
            uids = sorted({u for u, _r in items})
            present = sorted(self._present(uids))
            for i in range(0, len(present), self.s.expunge_chunk):
                chunk = present[i : i + self.s.expunge_chunk]
                if self._run(c.has_capability, "MOVE"):
                    self._run(c.move, chunk, target)
                else:
                    self._require_uidplus()
                    self._run(c.copy, chunk, target)
                    self._run(c.add_flags, chunk, [b"\\Deleted"], silent=True)
                    self._run(c.uid_expunge, chunk)
            # an item already gone was moved by an earlier run (or deleted): not processed
            out.update({r: (ItemStatus.DONE if u in present else ItemStatus.ALREADY_DONE, None)
                        for u, r in items})
        return out

    def restricted(self, refs: Iterable[str], keyword: str, target: str | None) -> set[str]:
        """The refs (of keyword restriction) whose messages carry the keyword."""
        c = self.client()
        out: set[str] = set()
        for folder, by_validity in self._by_folder(refs).items():
            validity = self._select(folder, readonly=True)
            items = by_validity.get(validity, [])
            flags = self._run(c.get_flags, [u for u, _r in items]) if items else {}
            out.update(r for u, r in items if keyword.encode() in flags.get(u, ()))
        return out

    # retention -------------------------------------------------------------------------

    def expired(self, cutoff: datetime, by_header: bool) -> Iterator[tuple[str, str]]:
        """(ref, folder) of every message dated before ``cutoff``: one SEARCH per folder
        (BEFORE: INTERNALDATE; SENTBEFORE: the Date header)."""
        c = self.client()
        if not by_header and self._run(c.has_capability, "WITHIN"):
            # OLDER (RFC 5032): exact to the second, by INTERNALDATE
            key: list[Any] = [b"OLDER", max(1, int((datetime.now(UTC) - cutoff)
                                                 .total_seconds()) + 1)]
        else:
            # BEFORE / SENTBEFORE compare days: the cutoff's day is left for tomorrow's
            # sweep, so a message never goes early
            key = [b"SENTBEFORE" if by_header else b"BEFORE", cutoff.date()]
        for folder in self.folders():
            validity = self._select(folder, readonly=True)
            uids = self._run(c.search, key)
            for uid in sorted(uids):
                yield self.ref(folder, validity, uid), folder

    def stats(self, by_header: bool) -> dict[str, FolderStats]:
        """Message count and oldest date per folder (SORT when the server has it)."""
        c = self.client()
        out = {}
        for folder in self.folders():
            self._select(folder, readonly=True)
            uids = self._run(c.search, [b"ALL"])
            oldest = None
            if uids:
                if self._run(c.has_capability, "SORT"):
                    first = self._run(c.sort, [b"DATE" if by_header else b"ARRIVAL"])[:1]
                else:
                    first = list(uids)
                key = b"BODY[HEADER.FIELDS (DATE)]" if by_header else b"INTERNALDATE"
                got = self._run(c.fetch, first, [
                    b"BODY.PEEK[HEADER.FIELDS (DATE)]" if by_header else b"INTERNALDATE"])
                dates = [_date(d.get(key), by_header) for d in got.values()]
                oldest = min((d for d in dates if d), default=None)
            out[folder] = FolderStats(len(uids), oldest)
        return out


def _date(value: Any, by_header: bool) -> datetime | None:
    if value is None:
        return None
    if by_header:
        return header_date(value)
    assert isinstance(value, datetime)
    # imapclient gives INTERNALDATE in local time, naive unless normalise_times is off
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _uid_set(uids: list[int]) -> bytes:
    """A compact UID set: runs as ranges ("1:500,502")."""
    parts: list[str] = []
    start = prev = uids[0]
    for u in uids[1:]:
        if u == prev + 1:
            prev = u
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = u
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts).encode()
