"""Access and portability packages do not outlive their use.

A package holds a person's data in clear (or under a password), so it goes:

- ``package_days`` after it was made (default 30), at the next ``erasure run``;
- at once when an erasure request of the same person completes (unless the package was
  made in the same batch: the person asked for both at once): the package's row keeps
  keyed hashes of its subject's strong identifiers, cleared when the file goes.

The receipt of each system records the package's SHA-256, never its content.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ledger import Ledger

__all__ = ["drop_for_subject", "expire", "new_password", "sha256_of"]


def new_password() -> str:
    """A password for one package (shown once, never stored)."""
    return secrets.token_urlsafe(18)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _remove(folder: Path, rows: list[dict[str, Any]]) -> list[str]:
    gone = []
    for r in rows:
        (folder / r["file"]).unlink(missing_ok=True)
        gone.append(r["request_id"])
    return gone


def expire(ledger: Ledger, folder: Path, now: datetime) -> int:
    """Delete the packages past their time; how many went."""
    due = [r for r in ledger.live_packages() if r["expires_at"] <= now]
    ledger.packages_deleted(_remove(folder, due), "expired")
    return len(due)


def drop_for_subject(ledger: Ledger, folder: Path, hashes: set[str],
                     keep: set[str]) -> int:
    """Delete the packages of a person just erased (any strong identifier in common),
    but those of the requests in ``keep``: made in the same batch as the erasure (the
    person asked for access and erasure at once), a package is the answer to their
    access request and stays until it expires."""
    if not hashes:
        return 0
    hit = [r for r in ledger.live_packages() if r["request_id"] not in keep
           and hashes & set(json.loads(r["subjects"] or "[]"))]
    ledger.packages_deleted(_remove(folder, hit), "subject erased")
    return len(hit)
