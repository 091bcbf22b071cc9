"""Maildir (Maildir++, as Dovecot and Courier keep it): one file per message.

Refs are ``md:<unique name>:<folder>``: the unique part of the file name, which stays the
same when flags change (the ``:2,FLAGS`` suffix). A message's arrival time is its file's
modification time, as Dovecot reads it. Keywords are Dovecot's: lower-case flag letters
named in the folder's ``dovecot-keywords`` file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from erasure import ItemStatus, PermanentError, TransientError

from .base import FolderStats, Outcomes, header_date
from .scan import Needles

__all__ = ["MaildirBackend"]

INBOX = "INBOX"


class MaildirBackend:
    """A Maildir++ root and its ``.Sub`` folders."""

    def __init__(self, root: Path, exclude: Iterable[str] = ()) -> None:
        self.root = root
        self.exclude = frozenset(exclude)

    # folders ---------------------------------------------------------------------------

    def check(self) -> None:
        """The root must be a Maildir this process can write."""
        if not (self.root / "cur").is_dir() or not (self.root / "new").is_dir():
            raise PermanentError("maildir path is not a Maildir (no cur/ and new/)")
        if not os.access(self.root / "cur", os.W_OK):
            raise PermanentError("maildir is not writable: cannot delete")

    def folders(self) -> list[str]:
        """INBOX and every Maildir++ sub-folder, less the excluded ones."""
        self._exists()
        names = [INBOX] + sorted(
            p.name[1:] for p in self.root.iterdir()
            if p.name.startswith(".") and p.name not in (".", "..") and (p / "cur").is_dir())
        return [n for n in names if n not in self.exclude]

    def _exists(self) -> None:
        if not self.root.is_dir():
            raise PermanentError("maildir path does not exist")

    def _dir(self, folder: str) -> Path:
        if folder == INBOX:
            return self.root
        if "/" in folder or folder.startswith(".") or not folder:
            raise PermanentError("not a Maildir++ folder name")
        return self.root / f".{folder}"

    def _files(self, folder: str) -> Iterator[tuple[str, Path]]:
        """(unique name, path) of every message file of a folder."""
        base = self._dir(folder)
        for sub in ("new", "cur"):
            try:
                entries = list(os.scandir(base / sub))
            except FileNotFoundError:
                continue
            for e in entries:
                if not e.name.startswith(".") and e.is_file(follow_symlinks=False):
                    yield e.name.split(":", 1)[0], Path(e.path)

    def _index(self, folder: str) -> dict[str, Path]:
        """unique name -> path of every message of a folder (one listing: a call that
        touches thousands of messages must not list the folder once per message)."""
        return dict(self._files(folder))

    def _locate(self, folder: str, key: str) -> Path | None:
        base = self._dir(folder)
        for sub in ("cur", "new"):
            try:
                names = os.listdir(base / sub)
            except FileNotFoundError:
                continue
            for name in names:
                if name == key or name.startswith(key + ":"):
                    return base / sub / name
        return None

    @staticmethod
    def ref(folder: str, key: str) -> str:
        return f"md:{key}:{folder}"

    @staticmethod
    def parse(ref: str) -> tuple[str, str]:
        """(folder, key) of a ref."""
        kind, key, folder = ref.split(":", 2)
        if kind != "md":
            raise PermanentError("not a maildir finding")
        return folder, key

    # find, fetch -----------------------------------------------------------------------

    def candidates(self, needles: Needles) -> Iterator[tuple[str, str, bytes]]:
        """(ref, folder, raw) of every message in which a needle occurs: one read each."""
        for folder in self.folders():
            for key, path in self._files(folder):
                try:
                    raw = path.read_bytes()
                except FileNotFoundError:
                    continue  # moved or deleted meanwhile: not there
                except OSError as exc:
                    raise TransientError(f"cannot read a maildir message ({exc.errno})") from None
                if needles.found_in(raw):
                    yield self.ref(folder, key), folder, raw

    def _grouped(self, refs: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """folder -> [(key, ref)]."""
        out: dict[str, list[tuple[str, str]]] = {}
        for ref in refs:
            folder, key = self.parse(ref)
            out.setdefault(folder, []).append((key, ref))
        return out

    def fetch(self, refs: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """(folder, raw) of each ref that still exists."""
        out = {}
        for folder, items in self._grouped(refs).items():
            index = self._index(folder)
            for key, ref in items:
                if key in index:
                    try:
                        out[ref] = (folder, index[key].read_bytes())
                    except FileNotFoundError:
                        continue
        return out

    # delete, restrict ------------------------------------------------------------------

    def delete(self, refs: Iterable[str]) -> Outcomes:
        """Unlink each message file; verify they are gone (one listing after)."""
        out: Outcomes = {}
        for folder, items in self._grouped(refs).items():
            index = self._index(folder)
            unlinked = set()
            for key, ref in items:
                path = index.get(key)
                if path is None:
                    out[ref] = (ItemStatus.ALREADY_DONE, None)
                    continue
                try:
                    path.unlink()
                    unlinked.add(key)
                except FileNotFoundError:
                    out[ref] = (ItemStatus.ALREADY_DONE, None)
                except OSError as exc:
                    out[ref] = (ItemStatus.FAILED, f"unlink failed (errno {exc.errno})")
            left = self._index(folder)
            for key, ref in items:
                if key in unlinked:
                    out[ref] = (ItemStatus.FAILED, "message still there after unlink") \
                        if key in left else (ItemStatus.DONE, None)
        return out

    def _keyword_letter(self, folder: str, keyword: str, *, create: bool) -> str | None:
        path = self._dir(folder) / "dovecot-keywords"
        known: dict[str, int] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                idx, _, name = line.partition(" ")
                if idx.isdigit():
                    known[name] = int(idx)
        if keyword in known:
            return chr(ord("a") + known[keyword])
        if not create:
            return None
        free = next(i for i in range(26) if i not in known.values())
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"{free} {keyword}\n")
        return chr(ord("a") + free)

    @staticmethod
    def _flags(path: Path) -> str:
        _, _, info = path.name.partition(":2,")
        return info if ":2," in path.name else ""

    def restrict_keyword(self, refs: Iterable[str], keyword: str) -> Outcomes:
        """Add the keyword's flag letter to each message file's name (a rename)."""
        out: Outcomes = {}
        for ref in refs:
            folder, key = self.parse(ref)
            path = self._locate(folder, key)
            if path is None:
                out[ref] = (ItemStatus.FAILED, "message no longer exists")
                continue
            letter = self._keyword_letter(folder, keyword, create=True)
            assert letter is not None
            flags = self._flags(path)
            if letter in flags:
                out[ref] = (ItemStatus.ALREADY_DONE, None)
                continue
            new = path.parent.parent / "cur" / f"{key}:2,{''.join(sorted(flags + letter))}"
            os.rename(path, new)
            out[ref] = (ItemStatus.DONE, None)
        return out

    def restrict_move(self, refs: Iterable[str], target: str) -> Outcomes:
        """Move each message file into the restricted folder (a rename: same file)."""
        out: Outcomes = {}
        tdir = self._dir(target)
        for sub in ("cur", "new", "tmp"):
            (tdir / sub).mkdir(parents=True, exist_ok=True)
        for ref in refs:
            folder, key = self.parse(ref)
            if folder == target:
                out[ref] = (ItemStatus.ALREADY_DONE, None)
                continue
            path = self._locate(folder, key)
            if path is None:
                moved = self._locate(target, key) is not None
                out[ref] = ((ItemStatus.ALREADY_DONE, None) if moved
                            else (ItemStatus.FAILED, "message no longer exists"))
                continue
            os.rename(path, tdir / path.parent.name / path.name)
            out[ref] = (ItemStatus.DONE, None)
        return out

    def restricted(self, refs: Iterable[str], keyword: str, target: str | None) -> set[str]:
        """The refs whose messages carry the keyword or sit in the restricted folder."""
        out = set()
        for ref in refs:
            folder, key = self.parse(ref)
            if target is not None:
                if folder == target or self._locate(target, key) is not None:
                    out.add(ref)
                continue
            path = self._locate(folder, key)
            letter = self._keyword_letter(folder, keyword, create=False)
            if path is not None and letter is not None and letter in self._flags(path):
                out.add(ref)
        return out

    # retention -------------------------------------------------------------------------

    def _dated(self, folder: str, by_header: bool) -> Iterator[tuple[str, datetime]]:
        for key, path in self._files(folder):
            try:
                if by_header:
                    with path.open("rb") as fh:
                        when = header_date(fh.read(64 << 10))
                    if when is None:  # no readable Date: arrival time decides
                        when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                else:
                    when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except FileNotFoundError:
                continue
            yield key, when

    def expired(self, cutoff: datetime, by_header: bool) -> Iterator[tuple[str, str]]:
        """(ref, folder) of every message that arrived before ``cutoff``."""
        for folder in self.folders():
            for key, when in self._dated(folder, by_header):
                if when < cutoff:
                    yield self.ref(folder, key), folder

    def stats(self, by_header: bool) -> dict[str, FolderStats]:
        """Message count and oldest date per folder."""
        out = {}
        for folder in self.folders():
            dates = [when for _k, when in self._dated(folder, by_header)]
            out[folder] = FolderStats(len(dates), min(dates, default=None))
        return out

    def close(self) -> None:
        """Nothing to release."""
