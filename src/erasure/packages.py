"""Access and portability packages do not outlive their use.

A package holds a person's data in clear (or under a password), so it goes:

- ``package_days`` after it was made (default 30), at the next ``erasure run``;
- when an erasure request of the same person completes: at once if the package was
  delivered (``erasure package get``), else when it is delivered or expires, so that an
  access request made before the erasure is still answered. The package's row keeps keyed
  hashes of its subject's strong identifiers, cleared when the file goes.

The receipt of each system records the package's SHA-256, never its content.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import UsageError

if TYPE_CHECKING:
    from .ledger import Ledger

__all__ = ["PackageGone", "deliver", "drop_for_subject", "expire", "new_password",
           "sha256_of"]


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


def drop_for_subject(ledger: Ledger, folder: Path, hashes: set[str]) -> int:
    """An erasure of a person completed (``hashes``: their strong identifiers): their
    delivered packages go now; the others are marked, and go when they are delivered or
    expire (an access request made before the erasure is still answered). How many went."""
    if not hashes:
        return 0
    hit = [r["request_id"] for r in ledger.live_packages()
           if hashes & set(json.loads(r["subjects"] or "[]"))]
    delivered = ledger.subject_erased(hit)
    ledger.packages_deleted(_remove(folder, delivered), "subject erased")
    return len(delivered)


class PackageGone(UsageError):
    """The request has no package to give (none made, or deleted)."""


def deliver(ledger: Ledger, folder: Path, request_id: str, sink: BinaryIO) -> dict[str, Any]:
    """Copy the package of ``request_id`` into ``sink`` and record it delivered; a package
    whose subject was erased meanwhile is deleted once delivered. Its ledger row."""
    rows = ledger.packages([request_id])
    if not rows:
        raise PackageGone(f"request {request_id} has no package (only access and "
                          "portability requests that ended have one)")
    row = rows[-1]
    if row["deleted_at"] is not None:
        raise PackageGone(f"the package of {request_id} was deleted "
                          f"{row['deleted_at']:%Y-%m-%d %H:%M} UTC ({row['deleted_why']})")
    try:
        with (folder / row["file"]).open("rb") as f:
            while block := f.read(1 << 20):
                sink.write(block)
    except FileNotFoundError:
        raise PackageGone(f"the package file of {request_id} is missing from "
                          f"{folder}") from None
    sink.flush()
    now = ledger.package_delivered(request_id)
    if now is not None and now["subject_erased_at"] is not None:
        ledger.packages_deleted(_remove(folder, [now]), "delivered after erasure")
    return ledger.packages([request_id])[-1]
