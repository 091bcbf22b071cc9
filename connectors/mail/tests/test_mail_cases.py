"""The traps of mail archives, on every backend: each test checks both failure directions,
nothing of the subject left behind and nobody else's mail changed."""

from __future__ import annotations

import base64
import hashlib
import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from erasure_mail import MailConnector
from mail_fixtures import Archive, message

from erasure import Identifier, IdentifierType, ItemStatus, Subject

BOB = "bob@example.org"


def subject(key: str = "req-bob", email: str = BOB, phone: str | None = None) -> Subject:
    idents = [Identifier.parse(IdentifierType.EMAIL, email)]
    if phone:
        idents.append(Identifier.parse(IdentifierType.PHONE, phone))
    return Subject(key, tuple(idents))


def everything(conn: MailConnector) -> dict[str, bytes]:
    """Every message of every folder by (folder, body hash): what an operator sees."""
    out = {}
    backend = conn.backend
    for folder in backend.folders():
        if conn.settings.backend == "imap":
            c = backend.client()
            backend._select(folder, readonly=True)  # noqa: SLF001
            got = c.fetch(c.search(["ALL"]), [b"BODY.PEEK[]", b"FLAGS"])
            for data in got.values():
                raw = data[b"BODY[]"]
                key = f"{folder}:{hashlib.sha256(raw).hexdigest()[:16]}"
                out[key] = raw + b"|" + b" ".join(sorted(data[b"FLAGS"]))
        else:
            from erasure_mail.scan import Needles
            for _ref, f, raw in backend.candidates(Needles(["@"])):
                out[f"{f}:{hashlib.sha256(raw).hexdigest()[:16]}"] = raw
    return out


def seed_traps(a: Archive) -> None:
    """Bob's three messages and the neighbours whose addresses contain his."""
    a.add(message(BOB, "support@company.test", "bob's own"))
    a.add(message("support@company.test", "Bob <BOB@Example.ORG>", "to bob, upper case"))
    # RFC 2047 encoded display name, real address Bob's
    a.add(message("support@company.test", "=?utf-8?b?QsO2YiBCw6RrZXI=?= <bob@example.org>",
                  "to bob, encoded name"), folder="Sent")
    # lookalikes: substrings and superstrings of Bob's address
    a.add(message("jimbob@example.org", "support@company.test", "jimbob"))
    a.add(message("support@company.test", "bob@example.org.evil.test", "longer domain"))
    a.add(message("support@company.test", "xbob@example.org", "prefix"), folder="Trash")
    # a display name spelling Bob's address, encoded, on Jimbob's address
    a.add(message("=?utf-8?q?bob=40example=2Eorg?= <jimbob@example.org>",
                  "support@company.test", "name spells bob"))
    a.add(message('"bob@example.org" <jimbob@example.org>', "support@company.test",
                  "quoted name spells bob"), folder="Trash")


def test_exact_addresses_only_and_rfc2047(archive: Archive) -> None:
    seed_traps(archive)
    conn = archive.connector()
    found = list(conn.find([subject()]))
    subjects = sorted(conn.export(found), key=lambda r: r.data["subject"])
    assert [r.data["subject"] for r in subjects] == [
        "bob's own", "to bob, encoded name", "to bob, upper case"]
    assert {r.data["folder"] for r in subjects} == {"INBOX", "Sent"}
    before = everything(conn)
    outcomes = list(conn.delete(found))
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    assert list(conn.find([subject()])) == [], "bob's mail left behind"
    after = everything(conn)
    assert len(before) - len(after) == 3
    assert set(after) <= set(before), "someone else's message changed"
    # Jimbob still has both of his, including the one whose name spells Bob's address
    assert len(list(conn.find([subject("req-jim", "jimbob@example.org")]))) == 3


def test_sent_and_trash_searched_and_exclusion(archive: Archive) -> None:
    archive.add(message(BOB, "a@company.test", "inbox"))
    archive.add(message("a@company.test", BOB, "sent"), folder="Sent")
    archive.add(message(BOB, "a@company.test", "trash"), folder="Trash")
    conn = archive.connector()
    folders = sorted(r.data["folder"] for r in conn.export(list(conn.find([subject()]))))
    assert folders == ["INBOX", "Sent", "Trash"]
    narrow = archive.connector(exclude_folders=("Trash",))
    assert sorted(r.data["folder"] for r in narrow.export(list(narrow.find([subject()])))) \
        == ["INBOX", "Sent"]


def test_body_search_phones_and_addresses(archive: Archive) -> None:
    archive.add(message("a@company.test", "c@company.test", "mentions bob",
                        "Forwarding from bob@example.org, phone +49 30 123456 or +4930123456."))
    archive.add(message("a@company.test", "c@company.test", "mentions jimbob",
                        "jimbob@example.org, +49301234567, 004930123456789"))
    conn = archive.connector(search_body=True)
    found = list(conn.find([subject(phone="+4930123456")]))
    assert [f.fields for f in found] == [("body",)]
    assert {i.type for i in found[0].matched} == {IdentifierType.EMAIL, IdentifierType.PHONE}
    assert list(archive.connector().find([subject()])) == [], "body searched without opt-in"


def test_body_phones_as_people_write_them(archive: Archive) -> None:
    archive.add(message("a@company.test", "c@company.test", "spaced",
                        "Call Bob on +44 113 000 0001 after six."))
    archive.add(message("a@company.test", "c@company.test", "national",
                        "Bob's desk:\n0113 000 0001 (ext. 2)."))
    archive.add(message("a@company.test", "c@company.test", "Ring 0113-000-0001 today"))
    archive.add(message("a@company.test", "c@company.test", "longer",
                        "Not Bob: +44 113 000 00012, 0113 000 00012 or +44 113 000 0001 2."))
    bob = Subject("req-bob", (Identifier.parse(IdentifierType.PHONE, "+44 113 000 0001"),))
    international = archive.connector(search_body=True)
    found = list(international.find([bob]))
    assert sorted(r.data["subject"] for r in international.export(found)) == ["spaced"]
    conn = archive.connector(search_body=True, phone_region="GB")
    found = list(conn.find([bob]))
    assert sorted(r.data["subject"] for r in conn.export(found)) == [
        "Ring 0113-000-0001 today", "national", "spaced"]
    assert {f.fields for f in found} == {("body",), ("subject",)}
    before = set(everything(conn))  # (folder, hash of the message)
    assert {o.status for o in conn.delete(found)} == {ItemStatus.DONE}
    assert list(conn.find([bob])) == [], "a written form of the number is still there"
    left = set(everything(conn))
    assert len(left) == 1 and left <= before, "the message with a longer number went"


def test_hostile_and_non_ascii_values(archive: Archive) -> None:
    odd = 'o"d\\d)(x@example.org'
    archive.add(message(BOB, "a@company.test", "plain"))
    archive.add(message("j\u00f6rg@example.org", "a@company.test", "idn"))
    conn = archive.connector()
    hostile = Subject("req-h", (Identifier(IdentifierType.EMAIL, odd),
                                Identifier(IdentifierType.EMAIL, "*"),
                                Identifier(IdentifierType.EMAIL, "x) OR ALL (")))
    before = everything(conn)
    assert list(conn.find([hostile])) == []
    assert everything(conn) == before
    found = list(conn.find([subject("req-j", "j\u00f6rg@example.org")]))
    assert len(found) == 1


def test_an_international_domain_is_matched_in_unicode_and_in_punycode(
        archive: Archive) -> None:
    archive.add(message("user@xn--bcher-kva.example", "a@company.test", "punycode"))
    archive.add(message("a@company.test", "User@B\u00fccher.example", "unicode"))
    archive.add(message("user@bucher.example", "a@company.test", "someone else"))
    conn = archive.connector()
    for asked in ("user@b\u00fccher.example", "user@xn--bcher-kva.example"):
        found = list(conn.find([subject("req-u", asked)]))
        assert sorted(r.data["subject"] for r in conn.export(found)) == ["punycode", "unicode"]


def test_restrict_by_moving_to_a_folder(archive: Archive) -> None:
    archive.add(message(BOB, "a@company.test", "one"))
    archive.add(message("a@company.test", BOB, "two"), folder="Sent")
    archive.add(message("carol@example.org", "a@company.test", "carol"))
    if archive.backend == "mbox":
        (archive.root / "Sent").touch()
    conn = archive.connector(restricted_folder="Restricted")
    carol = subject("c", "carol@example.org")
    carol_before = [r.data for r in conn.export(list(conn.find([carol])))]
    found = list(conn.find([subject()]))
    assert {o.status for o in conn.restrict(found)} == {ItemStatus.DONE}
    assert {o.status for o in conn.restrict(found)} == {ItemStatus.ALREADY_DONE}
    moved = list(conn.find([subject()]))
    assert sorted(r.data["folder"] for r in conn.export(moved)) == ["Restricted"] * 2
    assert {o.status for o in conn.restrict(moved)} == {ItemStatus.ALREADY_DONE}
    carol_after = [r.data for r in conn.export(list(conn.find([carol])))]
    assert carol_after == carol_before


def _dated(a: Archive, now: datetime) -> dict[str, datetime]:
    """Messages either side of the 12-month edge, in two folders."""
    edge = datetime(now.year - 1, now.month, now.day, now.hour, now.minute, tzinfo=UTC)
    dates = {"ancient": edge - timedelta(days=400), "just-older": edge - timedelta(hours=30),
             "just-newer": edge + timedelta(hours=30), "new": now - timedelta(days=1)}
    for n, (label, when) in enumerate(dates.items()):
        a.add(message(f"p{n}@example.org", "a@company.test", label, date=when),
              folder="Sent" if n % 2 else "INBOX", when=when)
    if a.backend == "mbox":
        (a.root / "Sent").touch()
    return dates


def test_retention_edge(archive: Archive) -> None:
    now = datetime.now(UTC)
    _dated(archive, now)
    conn = archive.connector()
    cutoff = conn.retention_cutoff(now)
    assert cutoff is not None
    expired = list(conn.expired(cutoff))
    subjects = sorted(r.data["subject"] for r in conn.export(expired))
    assert subjects == ["ancient", "just-older"]
    assert {f.kind for f in expired} == {"INBOX", "Sent"}
    assert {o.status for o in conn.delete(expired)} == {ItemStatus.DONE}
    assert list(conn.expired(cutoff)) == []
    left = sorted(r.data["subject"] for r in conn.export(
        list(conn.find([subject(f"p{n}", f"p{n}@example.org") for n in range(4)]))))
    assert left == ["just-newer", "new"]
    oldest = conn.oldest()
    assert oldest is not None and cutoff < oldest < now


def test_retention_by_date_header(archive: Archive) -> None:
    now = datetime.now(UTC)
    # arrived yesterday, but written two years ago (an imported archive)
    archive.add(message("p@example.org", "a@company.test", "old header",
                        date=now - timedelta(days=730)), when=now - timedelta(days=1))
    archive.add(message("q@example.org", "a@company.test", "new header"))
    by_arrival = archive.connector()
    assert list(by_arrival.expired(by_arrival.retention_cutoff(now))) == []
    by_header = archive.connector(retention_date="header")
    got = list(by_header.expired(by_header.retention_cutoff(now)))
    assert [r.data["subject"] for r in by_header.export(got)] == ["old header"]


def test_discover_lists_folders_and_old_mail(archive: Archive) -> None:
    _dated(archive, datetime.now(UTC))
    text = archive.connector().discover()
    assert "2 folders, 4 messages" in text
    assert "'INBOX' | 2" in text.replace('"', "'") and "YES" in text
    assert "@" not in text, "discover must not show addresses"


def test_mbox_unescaped_from_line(tmp_path: Path) -> None:
    box = tmp_path / "archive.mbox"
    carol = message("carol@example.org", "a@company.test", "carol's")
    bob = message(BOB, "a@company.test", "bob's", "Hi,\n\nFrom me to you, the figures.\n\n"
                  "From the desk of Bob: +4930123456\n")
    dave = message("dave@example.org", "a@company.test", "dave's")
    stamp = b"From x@y Thu Dec  3 10:00:00 2026\n"
    box.write_bytes(stamp + carol + b"\n" + stamp + bob + b"\n" + stamp + dave + b"\n")
    conn = Archive("mbox", box).connector()
    found = list(conn.find([subject()]))
    assert len(found) == 1
    (record,) = conn.export(found)
    assert b"From the desk of Bob" in base64.b64decode(
        next(iter(record.data["_files"].values())))
    assert {o.status for o in conn.delete(found)} == {ItemStatus.DONE}
    data = box.read_bytes()
    assert b"From me to you" not in data and b"desk of Bob" not in data
    assert carol in data and dave in data, "a neighbour of the message was damaged"


def test_locked_mbox_is_transient_and_untouched(tmp_path: Path) -> None:
    import subprocess
    import sys

    from erasure import TransientError

    a = Archive("mbox", tmp_path / "box")
    a.root.mkdir()
    a.add(message(BOB, "a@company.test", "bob"))
    a.add(message("carol@example.org", "a@company.test", "carol"))
    conn = a.connector()
    found = list(conn.find([subject()]))
    path = a.root / "INBOX"
    before = path.read_bytes()
    # another program holds the dot-lock
    dotlock = path.with_name("INBOX.lock")
    dotlock.touch()
    with pytest.raises(TransientError):
        list(conn.delete(found))
    dotlock.unlink()
    assert path.read_bytes() == before
    # another process holds the fcntl lock
    holder = subprocess.Popen([sys.executable, "-c", (  # noqa: S603
        "import fcntl,sys,time\nf=open(sys.argv[1],'r+b')\nfcntl.lockf(f,fcntl.LOCK_EX)\n"
        "print('locked',flush=True)\ntime.sleep(30)"), str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(TransientError):
            list(conn.delete(found))
        assert path.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    assert not dotlock.exists(), "our dot-lock was left behind"
    assert {o.status for o in conn.delete(found)} == {ItemStatus.DONE}
    assert list(conn.find([subject()])) == []


def test_export_package_holds_each_message_as_eml(tmp_path: Path) -> None:
    import json
    import zipfile

    from erasure.export import write_package

    a = Archive("maildir", tmp_path / "Maildir")
    raw = message(BOB, "a@company.test", "for the package", "Gr\u00fc\u00dfe")
    mailbox.Maildir(a.root, create=True)
    a.add(raw, folder="Sent")
    a.add(message("carol@example.org", "a@company.test", "not bob's"))
    conn = a.connector()
    records = list(conn.export(list(conn.find([subject()]))))
    path = write_package(tmp_path / "out", "req-1", "access",
                         {"archive": [(r.finding.kind, r.data) for r in records]},
                         generated_at="2026-12-03T10:00:00")
    with zipfile.ZipFile(path) as zf:
        emls = [n for n in zf.namelist() if n.endswith(".eml")]
        assert len(emls) == 1 and emls[0].startswith("archive/message/")
        assert zf.read(emls[0]) == raw, "the .eml is not the message as stored"
        index = json.loads(zf.read("archive.json"))
        (entry,) = index["records"]["message"]
        assert entry["files"] == emls and "_files" not in entry
        assert entry["from"] == [BOB] and entry["folder"] == "Sent"
        assert "_files" not in zf.read("index.html").decode()
