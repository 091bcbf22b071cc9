"""A 50,000-message folder: one pass finds a batch's messages, one locked rewrite (mbox) or
one unlink each (Maildir) erases them, the sweep takes exactly the old half; nobody else's
message changes. Maildir at 50,000 runs under `make test-long` (ERASURE_MAIL_LONG=1)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from erasure_mail import MailConnector, MailSettings
from mail_fixtures import message
from test_mail_cases import subject

from erasure import ItemStatus

LONG = bool(os.environ.get("ERASURE_MAIL_LONG"))


def _messages(n: int, now: datetime) -> list[tuple[bytes, datetime]]:
    out = []
    for i in range(n):
        when = now - timedelta(days=700 if i % 2 else 3)
        sender = "bob@example.org" if i in (17, 30_001 % n) else f"p{i}@example.org"
        to = "jimbob@example.org" if i == 18 else "a@company.test"
        out.append((message(sender, to, f"m{i}", date=when), when))
    return out


def _mbox(path: Path, msgs: list[tuple[bytes, datetime]]) -> None:
    with path.open("wb") as fh:
        for raw, when in msgs:
            fh.write(f"From x@y {when:%a %b %d %H:%M:%S %Y}\n".encode() + raw + b"\n")


def _maildir(root: Path, msgs: list[tuple[bytes, datetime]]) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for i, (raw, when) in enumerate(msgs):
        path = root / "cur" / f"17000{i:05d}.M{i}P1.big:2,S"
        path.write_bytes(raw)
        os.utime(path, (when.timestamp(), when.timestamp()))


@pytest.mark.parametrize("backend", ["mbox", "maildir"])
def test_a_50000_message_folder(backend: str, tmp_path: Path) -> None:
    n = 50_000 if backend == "mbox" or LONG else 5_000
    now = datetime.now(UTC)
    msgs = _messages(n, now)
    path = tmp_path / ("INBOX" if backend == "mbox" else "Maildir")
    (_mbox if backend == "mbox" else _maildir)(path, msgs)
    conn = MailConnector("big", MailSettings(backend=backend, path=path))
    started = time.monotonic()
    found = list(conn.find([subject(), subject("req-jim", "jimbob@example.org")]))
    took = time.monotonic() - started
    assert sorted((f.subject, len(f.matched)) for f in found) == [
        ("req-bob", 1), ("req-bob", 1), ("req-jim", 1)]
    assert took < 20, f"one pass over {n} messages took {took:.1f}s"
    bob = [f for f in found if f.subject == "req-bob"]
    assert {o.status for o in conn.delete(bob)} == {ItemStatus.DONE}
    assert list(conn.find([subject()])) == []
    assert len(list(conn.find([subject("req-jim", "jimbob@example.org")]))) == 1
    cutoff = conn.retention_cutoff(now)
    assert cutoff is not None
    expired = list(conn.expired(cutoff))
    old = sum(1 for i in range(n) if i % 2 and i not in (17, 30_001 % n))
    assert len(expired) == old
    assert {o.status for o in conn.delete(expired)} == {ItemStatus.DONE}
    assert list(conn.expired(cutoff)) == []
    left = conn.stats()
    assert sum(s.count for s in left.values()) == n - old - 2
    assert all(s.oldest is not None and s.oldest > cutoff for s in left.values())
