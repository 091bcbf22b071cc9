"""IMAP against Dovecot: other people's \\Deleted mail, UIDVALIDITY, UIDPLUS, and a big
folder swept with one search and chunked UID EXPUNGEs (the commands on the wire counted)."""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from erasure_mail import MailConnector
from mail_fixtures import Archive, Dovecot, message
from test_mail_cases import BOB, subject

from erasure import ItemStatus, PermanentError

#: size of the big folder; `make test-long` sets ERASURE_MAIL_LONG=1 for 50,000
BIG = 50_000 if os.environ.get("ERASURE_MAIL_LONG") else 5_000


@pytest.fixture
def imap(dovecot: Dovecot, tmp_path: Path) -> Archive:
    a = Archive("imap", tmp_path, dovecot, dovecot.new_user())
    yield a
    a.close()


def wire(conn: MailConnector) -> list[str]:
    """Every command line the connector's client sends from now on (tags dropped)."""
    c = conn.backend.client()
    sent: list[str] = []
    original = c._imap.send  # noqa: SLF001 - the socket writer of the client library

    def send(data: bytes) -> None:
        for line in bytes(data).decode("utf-8", "replace").split("\r\n"):
            parts = line.split(" ", 1)
            if len(parts) == 2 and re.fullmatch(r"[A-Z]+\d+", parts[0]):
                sent.append(parts[1])
        original(data)

    c._imap.send = send  # noqa: SLF001
    return sent


def uids(a: Archive, folder: str = "INBOX") -> dict[int, set[bytes]]:
    c = a.imap()
    c.select_folder(folder, readonly=True)
    # \\Recent belongs to the session that saw the message first: not the message's state
    return {u: set(f) - {b"\\Recent"} for u, f in c.get_flags(c.search(["ALL"])).items()}


def test_other_deleted_mail_is_not_expunged(imap: Archive) -> None:
    imap.add(message(BOB, "a@company.test", "bob"))
    imap.add(message("carol@example.org", "a@company.test", "carol, flagged by her client"))
    imap.add(message("dave@example.org", "a@company.test", "dave"))
    c = imap.imap()
    c.select_folder("INBOX")
    carol = c.search(["FROM", "carol@example.org"])
    c.add_flags(carol, [b"\\Deleted"])  # someone else's pending delete, not expunged
    before = uids(imap)
    conn = imap.connector()
    sent = wire(conn)
    found = list(conn.find([subject()]))
    assert {o.status for o in conn.delete(found)} == {ItemStatus.DONE}
    conn.close()
    after = uids(imap)
    assert set(before) - set(after) == {int(found[0].ref.split(".")[1].split(":")[0])}
    assert after[carol[0]] == before[carol[0]], "someone else's \\Deleted mail was changed"
    assert not [s for s in sent if s.split(" ")[0] in ("CLOSE", "EXPUNGE")], sent
    assert [s for s in sent if s.startswith("UID EXPUNGE")]


def test_fetch_and_expunge_chunks_are_the_settings(imap: Archive) -> None:
    # A server that limits responses (fetch_chunk) or command lines (expunge_chunk): every
    # message is still found, exported and deleted, in commands of that many UIDs.
    for n in range(7):
        imap.add(message(BOB, "a@company.test", f"bob {n}"))
    conn = imap.connector(fetch_chunk=3, expunge_chunk=3)
    conn.backend.folders()  # logged in before counting
    sent = wire(conn)
    found = list(conn.find([subject()]))
    assert len(found) == 7
    assert len([s for s in sent if s.startswith("UID FETCH")]) == 3  # 7 UIDs, 3 a command
    assert len(list(conn.export(found))) == 7
    del sent[:]
    assert [o.status for o in conn.delete(found)] == [ItemStatus.DONE] * 7
    assert len([s for s in sent if s.startswith("UID EXPUNGE")]) == 3
    assert list(conn.find([subject()])) == []
    conn.close()


def test_uidvalidity_change_makes_findings_stale(imap: Archive) -> None:
    imap.add(message(BOB, "a@company.test", "bob"), folder="Archive")
    imap.add(message("carol@example.org", "a@company.test", "carol"), folder="Archive")
    conn = imap.connector()
    found = list(conn.find([subject()]))
    # the folder is rebuilt (restored from a backup): same mail, new UIDs and UIDVALIDITY
    c = imap.imap()
    c.select_folder("Archive")
    raws = [d[b"BODY[]"] for d in c.fetch(c.search(["ALL"]), [b"BODY.PEEK[]"]).values()]
    c.unselect_folder()
    c.delete_folder("Archive")
    c.create_folder("Archive")
    for raw in reversed(raws):  # other order: UID 1 is now Carol's message
        c.append("Archive", raw)
    before = uids(imap, "Archive")
    outcomes = list(conn.delete(found))
    # STALE: the host searches again and acts on what it finds then
    assert [o.status for o in outcomes] == [ItemStatus.STALE]
    assert "UIDVALIDITY" in (outcomes[0].error or "") and not outcomes[0].transient
    assert uids(imap, "Archive") == before, "a stale finding deleted something"
    again = list(conn.find([subject()]))
    assert again and again[0].ref != found[0].ref
    assert {o.status for o in conn.delete(again)} == {ItemStatus.DONE}
    assert list(conn.find([subject()])) == []
    assert len(list(conn.find([subject("c", "carol@example.org")]))) == 1


def test_without_uidplus_nothing_is_deleted(imap: Archive) -> None:
    imap.add(message(BOB, "a@company.test", "bob"))
    conn = imap.connector()
    found = list(conn.find([subject()]))
    c = conn.backend.client()
    # the server as one without UIDPLUS would announce itself
    c._cached_capabilities = tuple(  # noqa: SLF001
        cap for cap in c.capabilities() if cap != b"UIDPLUS")
    before = uids(imap)
    with pytest.raises(PermanentError, match="UIDPLUS"):
        list(conn.delete(found))
    with pytest.raises(PermanentError, match="UIDPLUS"):
        conn.check()
    assert uids(imap) == before


def test_restrict_keyword_and_second_connector_view(imap: Archive) -> None:
    imap.add(message(BOB, "a@company.test", "bob"))
    conn = imap.connector()
    found = list(conn.find([subject()]))
    assert {o.status for o in conn.restrict(found)} == {ItemStatus.DONE}
    (flags,) = uids(imap).values()
    assert b"$Restricted" in flags


def _fill_maildir(server: Dovecot, user: str, n: int, old_every: int,
                  now: datetime) -> int:
    """Write ``n`` messages straight into the user's Maildir (fast: no APPEND each); every
    ``old_every``-th is two years old. Returns how many are old."""
    root = server.maildir(user)
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    old = 0
    for i in range(n):
        is_old = i % old_every == 0
        when = now - timedelta(days=730 if is_old else 10)
        old += is_old
        path = root / "cur" / f"{1700000000 + i}.M{i}P1.test:2,S"
        path.write_bytes(message(f"p{i}@example.org", "a@company.test", f"m{i}", date=when))
        os.utime(path, (when.timestamp(), when.timestamp()))
    if os.geteuid() == 0:
        for dirpath, _dirs, files in os.walk(root):
            os.chown(dirpath, server.uid, server.gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), server.uid, server.gid)
    return old


def test_big_folder_sweep_uses_one_search_and_chunked_expunges(dovecot: Dovecot) -> None:
    now = datetime.now(UTC)
    user = dovecot.new_user()
    old = _fill_maildir(dovecot, user, BIG, 2, now)
    conn = MailConnector("imap", dovecot.settings(user, expunge_chunk=1000))
    conn.backend.folders()  # log in and let Dovecot index the folder before counting
    sent = wire(conn)
    cutoff = conn.retention_cutoff(now)
    assert cutoff is not None
    expired = list(conn.expired(cutoff))
    assert len(expired) == old
    outcomes = list(conn.delete(expired))
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    searches = [s for s in sent if s.startswith("UID SEARCH")
                and re.search(r"\b(OLDER|BEFORE)\b", s)]
    assert len(searches) == 1, "one SEARCH BEFORE/OLDER per folder"
    chunks = math.ceil(old / 1000)
    assert len([s for s in sent if s.startswith("UID EXPUNGE")]) == chunks
    assert len([s for s in sent if s.startswith("UID STORE")]) == chunks
    assert len(sent) < 4 * chunks + 10, f"a command per message? {len(sent)} commands"
    assert not [s for s in sent if s.split(" ")[0] in ("CLOSE", "EXPUNGE")]
    # nothing old left, every new message still there
    assert list(conn.expired(cutoff)) == []
    c = dovecot.client(user)
    c.select_folder("INBOX", readonly=True)
    assert len(c.search(["ALL"])) == BIG - old
    assert len(c.search(["SINCE", (now - timedelta(days=30)).date()])) == BIG - old
    c.logout()
    conn.close()
