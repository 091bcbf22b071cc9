"""pytest fixtures of the mail connector tests (see mail_fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mail_fixtures import Archive, Dovecot, dovecot  # noqa: F401

BACKENDS = ["maildir", "mbox", "imap"]


@pytest.fixture(params=BACKENDS)
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Archive]:
    """An empty archive of each backend (IMAP: a fresh Dovecot account)."""
    backend = request.param
    if backend == "imap":
        server: Dovecot = request.getfixturevalue("dovecot")
        a = Archive("imap", tmp_path, server, server.new_user())
    elif backend == "maildir":
        a = Archive("maildir", tmp_path / "Maildir")
        import mailbox
        mailbox.Maildir(a.root, create=True)
    else:
        a = Archive("mbox", tmp_path / "mbox")
        a.root.mkdir()
        (a.root / "INBOX").touch()
    yield a
    a.close()
