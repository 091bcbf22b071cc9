"""The tool's own folders and files are its owner's alone: folders 0700, files 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["private_dir", "too_open"]


def private_dir(path: Path, *, close: bool = True) -> Path:
    """Create ``path`` and any missing parents as 0700, and (``close``) close an existing
    ``path`` that others can read: a folder of erasure's own, such as the state folder
    (an older version made it 0755). A shared folder is never closed: one with the sticky
    bit (``/tmp``: closing it broke every other user and service of the machine, a
    database server's temporary tables among them) or owned by another user. ``close=False``:
    a folder the operator chose for a file of ours (a SQLite ledger's): its file is made
    private, the folder is left as it is."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another process starting at once made it (and closes it itself)
        folder.chmod(0o700)  # mkdir's mode is filtered by the umask
    st = path.stat()
    if (close and st.st_mode & 0o077 and not st.st_mode & stat.S_ISVTX
            and st.st_uid == os.geteuid()):
        path.chmod(0o700)
    return path


def too_open(folder: Path) -> list[str]:
    """Paths under ``folder`` (itself included) that others than the owner may read or
    write, relative to it: folders must be 0700 and files 0600."""
    if not folder.exists():
        return []
    wide = []
    for p in [folder, *folder.rglob("*")]:
        try:
            if p.stat().st_mode & 0o077:
                wide.append(str(p.relative_to(folder)) if p != folder else str(folder))
        except FileNotFoundError:
            continue  # gone while we looked (a WAL checkpoint)
    return wide
