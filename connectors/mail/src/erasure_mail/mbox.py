"""mbox files: locked, rewritten to a temporary file and atomically replaced.

Refs are ``mbox:<fingerprint>:<folder>``: a hash of the message without the headers mail
programs rewrite (Status, X-Keywords...). Identical copies of one message share it, and go
together. Locking is the one other mail programs use: a ``<file>.lock`` dot-lock and an
``fcntl`` lock on the file; a folder locked by someone else is a TransientError (the host
retries later), never a wait.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from erasure import ItemStatus, PermanentError, TransientError

from .base import FolderStats, Outcomes, header_date
from .quoting import detect, quote
from .scan import Needles, mbox_entries, mbox_messages, mbox_preamble, mbox_spans, split_from_line

__all__ = ["MboxBackend", "fingerprint"]

_MUTABLE = re.compile(
    rb"(?im)^(?:status|x-status|x-keywords|x-uid|x-imapbase|x-imap|content-length|lines)"
    rb":[^\n]*\n(?:[ \t][^\n]*\n)*")
_KEYWORDS = re.compile(rb"(?im)^x-keywords:([^\n]*)\n")
#: the outcome of a message whose end cannot be told (see scan.mbox_bounds): kept, for a person
UNSURE = "mbox message boundary unsure (its Content-Length does not match): needs review"
_ASCTIME = "%a %b %d %H:%M:%S %Y"


_PROBE = re.compile(
    rb"(?i)(?:^|\n)(?:status|x-status|x-keywords|x-uid|x-imapbase|x-imap|content-length|lines):")
_MONTHS = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
     b"Dec"), start=1)}


def fingerprint(message: bytes) -> str:
    """The message's identity: a hash of it without the headers mail programs rewrite."""
    end = message.find(b"\n\n")
    head, body = (message, b"") if end < 0 else (message[: end + 1], message[end + 1 :])
    if _PROBE.search(head):  # rare: one scan for a line start, not a substitution
        head = _MUTABLE.sub(b"", head)
    return hashlib.sha256(head + body).hexdigest()[:32]


def _from_date(from_line: bytes) -> datetime | None:
    """The date of a "From sender Www Mmm dd hh:mm:ss [zone] yyyy" line, as UTC."""
    parts = from_line.split()
    try:
        month = _MONTHS[parts[3]]
        hms = [int(x) for x in parts[5].split(b":")]
        return datetime(int(parts[-1]), month, int(parts[4]), hms[0], hms[1],
                        hms[2] if len(hms) > 2 else 0, tzinfo=UTC)
    except (IndexError, KeyError, ValueError):
        return None


class MboxBackend:
    """One mbox file (folder named by the file), or a folder of mbox files."""

    def __init__(self, path: Path, exclude: Iterable[str] = ()) -> None:
        self.path = path
        self.exclude = frozenset(exclude)

    def check(self) -> None:
        """The mbox file or folder must exist and be writable."""
        if not self.path.exists():
            raise PermanentError("mbox path does not exist")
        if not os.access(self.path if self.path.is_dir() else self.path.parent, os.W_OK):
            raise PermanentError("mbox folder is not writable: cannot rewrite")

    def folders(self) -> list[str]:
        """Folder names: the file's name, or the files' paths below the folder."""
        if not self.path.exists():
            raise PermanentError("mbox path does not exist")
        if self.path.is_file():
            names = [self.path.name]
        else:
            names = sorted(
                p.relative_to(self.path).as_posix() for p in self.path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in
                                           p.relative_to(self.path).parts)
                and not p.name.endswith(".lock"))
        return [n for n in names if n not in self.exclude]

    def _file(self, folder: str) -> Path:
        if self.path.is_file() or not self.path.exists():
            if folder != self.path.name:
                raise PermanentError("no such mbox folder")
            return self.path
        p = (self.path / folder).resolve()
        if self.path.resolve() not in p.parents:
            raise PermanentError("mbox folder outside the configured path")
        return p

    @staticmethod
    def ref(folder: str, fp: str) -> str:
        return f"mbox:{fp}:{folder}"

    @staticmethod
    def parse(ref: str) -> tuple[str, str]:
        """(folder, fingerprint) of a ref."""
        kind, fp, folder = ref.split(":", 2)
        if kind != "mbox":
            raise PermanentError("not an mbox finding")
        return folder, fp

    # locking ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, path: Path, *, exclusive: bool) -> Iterator[BinaryIO]:
        """The open file, dot-locked (exclusive only) and fcntl-locked; TransientError when
        another program holds either lock."""
        dotlock = path.with_name(path.name + ".lock")
        if dotlock.exists() and not exclusive:
            raise TransientError("mbox folder is locked by another program", retry_after=30)
        made = False
        if exclusive:
            try:
                os.close(os.open(dotlock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                made = True
            except FileExistsError:
                raise TransientError("mbox folder is locked by another program",
                                     retry_after=30) from None
        try:
            with path.open("r+b" if exclusive else "rb") as fh:
                try:
                    fcntl.lockf(fh, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                                | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EACCES):
                        raise TransientError("mbox folder is locked by another program",
                                             retry_after=30) from None
                    raise
                try:
                    yield fh
                finally:
                    fcntl.lockf(fh, fcntl.LOCK_UN)
        finally:
            if made:
                dotlock.unlink(missing_ok=True)

    # find, fetch -----------------------------------------------------------------------

    def _messages(self, fh: BinaryIO, needles: Needles | None = None
                  ) -> Iterator[tuple[bytes, bytes, bool]]:
        """(From line, message, unsure) of every message, or of those a needle occurs in."""
        if needles is None:  # every message: sliced from the chunks read, no seeking
            for raw, unsure in mbox_entries(fh):
                yield (*split_from_line(raw), unsure)
            return
        for start, end, unsure in mbox_spans(fh, needles):
            pos = fh.tell()
            fh.seek(start)
            raw = fh.read(end - start)
            fh.seek(pos)
            yield (*split_from_line(raw), unsure)

    def candidates(self, needles: Needles) -> Iterator[tuple[str, str, bytes]]:
        """(ref, folder, raw) of every message in which a needle occurs: one pass a file."""
        for folder in self.folders():
            seen: set[str] = set()
            with self._locked(self._file(folder), exclusive=False) as fh:
                for _line, msg, _unsure in self._messages(fh, needles):
                    fp = fingerprint(msg)
                    if fp not in seen:
                        seen.add(fp)
                        yield self.ref(folder, fp), folder, msg

    def fetch(self, refs: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """(folder, raw) of each ref that still exists."""
        want = self._by_folder(refs)
        out: dict[str, tuple[str, bytes]] = {}
        for folder, fps in want.items():
            with self._locked(self._file(folder), exclusive=False) as fh:
                for _line, msg, _unsure in self._messages(fh):
                    fp = fingerprint(msg)
                    if fp in fps:
                        out.setdefault(self.ref(folder, fp), (folder, msg))
        return out

    def _by_folder(self, refs: Iterable[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for ref in refs:
            folder, fp = self.parse(ref)
            out.setdefault(folder, set()).add(fp)
        return out

    # rewrite ---------------------------------------------------------------------------

    def _rewrite(self, folder: str, change: dict[str, str], keyword: str = "",
                 appended: list[bytes] | None = None) -> tuple[set[str], set[str]]:
        """Rewrite a folder with the messages whose fingerprint is in ``change`` dropped
        (``"drop"``) or given the keyword (``"keyword"``); returns the fingerprints that
        were changed, and those of messages left as they are because their end is unsure
        (cutting one out could take a neighbour's bytes). Dropped messages' bytes are added
        to ``appended``. Nothing changed: no rewrite."""
        path = self._file(folder)
        hit: set[str] = set()
        held: set[str] = set()
        with self._locked(path, exclusive=True) as fh:
            tmp = path.with_name(f".{path.name}.erasure-tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         os.stat(path).st_mode & 0o777)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(mbox_preamble(fh))
                    for raw, unsure in mbox_entries(fh):
                        line, msg = split_from_line(raw)
                        fp = fingerprint(msg)
                        if fp in change and unsure:
                            held.add(fp)  # written back as it is
                        elif fp in change and change[fp] == "drop":
                            hit.add(fp)
                            if appended is not None:
                                appended.append(line + msg)
                            continue
                        elif fp in change and not _has_keyword(msg, keyword):
                            hit.add(fp)
                            # a header added: the stored body (its quoting) stays as it is
                            raw = line + _add_keyword(raw[len(line):], keyword)
                        out.write(raw)
                    out.flush()
                    os.fsync(out.fileno())
                if not hit:  # nothing to change: the original stays as it is
                    tmp.unlink()
                    return hit, held
                os.replace(tmp, path)  # atomic: readers see the old file or the new one
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return hit, held

    def _present(self, folder: str, fps: set[str]) -> tuple[set[str], set[str]]:
        """Which of ``fps`` the folder holds, and which of those in a message whose end is
        unsure."""
        present: set[str] = set()
        unsure: set[str] = set()
        with self._locked(self._file(folder), exclusive=False) as fh:
            for _l, msg, doubt in self._messages(fh):
                if (fp := fingerprint(msg)) in fps:
                    present.add(fp)
                    if doubt:
                        unsure.add(fp)
        return present, unsure

    def delete(self, refs: Iterable[str]) -> Outcomes:
        """Drop the messages in one locked rewrite per folder; verify by reading back."""
        out: Outcomes = {}
        for folder, fps in self._by_folder(refs).items():
            done, held = self._rewrite(folder, dict.fromkeys(fps, "drop"))
            left = self._present(folder, fps)[0] if done else set()
            for fp in fps:
                status = (ItemStatus.FAILED, UNSURE) if fp in held \
                    else (ItemStatus.FAILED, "message still there after rewrite") if fp in left \
                    else (ItemStatus.DONE, None) if fp in done else (ItemStatus.ALREADY_DONE, None)
                out[self.ref(folder, fp)] = status
        return out

    def restrict_keyword(self, refs: Iterable[str], keyword: str) -> Outcomes:
        """Add the keyword to each message's X-Keywords header (one rewrite per folder)."""
        out: Outcomes = {}
        for folder, fps in self._by_folder(refs).items():
            present = self._present(folder, fps)[0]
            done, held = self._rewrite(folder, dict.fromkeys(fps, "keyword"), keyword)
            for fp in fps:
                out[self.ref(folder, fp)] = (
                    (ItemStatus.FAILED, UNSURE) if fp in held
                    else (ItemStatus.DONE, None) if fp in done
                    else (ItemStatus.ALREADY_DONE, None) if fp in present
                    else (ItemStatus.FAILED, "message no longer exists"))
        return out

    def restrict_move(self, refs: Iterable[str], target: str) -> Outcomes:
        """Append the messages to the restricted folder, then drop them from theirs."""
        out: Outcomes = {}
        tpath = self._file(target) if self.path.is_dir() else None
        if tpath is None:
            raise PermanentError("restricted_folder needs path to be a folder of mbox files")
        tpath.parent.mkdir(parents=True, exist_ok=True)
        tpath.touch(mode=0o600, exist_ok=True)
        for folder, fps in self._by_folder(refs).items():
            if folder == target:
                out.update({self.ref(folder, fp): (ItemStatus.ALREADY_DONE, None) for fp in fps})
                continue
            present, held = self._present(folder, fps)
            present -= held  # an unsure message is neither copied nor cut out
            already = self._present(target, fps - present - held)[0]
            moving = self.fetch(self.ref(folder, fp) for fp in present)
            with self._locked(tpath, exclusive=True) as fh:  # copy first: never lost
                # quoted the way the messages already in the folder are
                convention = detect(mbox_messages(fh))
                fh.seek(0, os.SEEK_END)
                for ref in sorted(moving):
                    msg = moving[ref][1]
                    stamp = datetime.now(UTC).strftime(_ASCTIME)
                    fh.write(f"From MAILER-DAEMON {stamp}\n".encode() + quote(msg, convention)
                             + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._rewrite(folder, dict.fromkeys(present, "drop"))
            for fp in fps:
                out[self.ref(folder, fp)] = (
                    (ItemStatus.FAILED, UNSURE) if fp in held
                    else (ItemStatus.DONE, None) if fp in present
                    else (ItemStatus.ALREADY_DONE, None) if fp in already
                    else (ItemStatus.FAILED, "message no longer exists"))
        return out

    def restricted(self, refs: Iterable[str], keyword: str, target: str | None) -> set[str]:
        """The refs whose messages carry the keyword or sit in the restricted folder."""
        out = set()
        for folder, fps in self._by_folder(refs).items():
            where = target if target is not None else folder
            with self._locked(self._file(where), exclusive=False) as fh:
                for _l, msg, _unsure in self._messages(fh):
                    fp = fingerprint(msg)
                    if fp in fps and (target is not None or _has_keyword(msg, keyword)):
                        out.add(self.ref(folder, fp))
        return out

    # retention -------------------------------------------------------------------------

    def _dated(self, folder: str, by_header: bool) -> Iterator[tuple[str, datetime | None]]:
        with self._locked(self._file(folder), exclusive=False) as fh:
            for line, msg, _unsure in self._messages(fh):
                when = header_date(msg) if by_header else None
                yield fingerprint(msg), when or _from_date(line)

    def expired(self, cutoff: datetime, by_header: bool) -> Iterator[tuple[str, str]]:
        """(ref, folder) of every message dated before ``cutoff``."""
        for folder in self.folders():
            for fp, when in self._dated(folder, by_header):
                if when is not None and when < cutoff:
                    yield self.ref(folder, fp), folder

    def stats(self, by_header: bool) -> dict[str, FolderStats]:
        """Message count and oldest date per folder."""
        out = {}
        for folder in self.folders():
            dates = [w for _fp, w in self._dated(folder, by_header)]
            out[folder] = FolderStats(len(dates), min((d for d in dates if d), default=None))
        return out

    def close(self) -> None:
        """Nothing to release."""


def _has_keyword(msg: bytes, keyword: str) -> bool:
    end = msg.find(b"\n\n")
    m = _KEYWORDS.search(msg, 0, len(msg) if end < 0 else end + 1)
    return m is not None and keyword.encode() in m.group(1).split()


def _add_keyword(msg: bytes, keyword: str) -> bytes:
    end = msg.find(b"\n\n")
    limit = len(msg) if end < 0 else end + 1
    m = _KEYWORDS.search(msg, 0, limit)
    if m:
        line = m.group(0).rstrip(b"\n") + b" " + keyword.encode() + b"\n"
        return msg[: m.start()] + line + msg[m.end():]
    return msg[:limit] .rstrip(b"\n") + b"\nX-Keywords: " + keyword.encode() + b"\n" \
        + msg[limit:]
