"""mbox rewrites keep every message they do not change byte for byte: no ">From " quoting
added to a neighbour's body line, none taken away, the separators as they were; on the
erasure path, the restriction path and the 12-month sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from erasure_mail import MailConnector, MailSettings
from erasure_mail.quoting import detect, quote
from mail_fixtures import message, sweep_mbox

from erasure import Identifier, IdentifierType, ItemStatus, Subject

BOB = "bob@example.org"


def _stamp(when: datetime) -> bytes:
    return f"From x@y {when.astimezone(UTC).strftime('%a %b %d %H:%M:%S %Y')}\n".encode()


def _world(when_bob: datetime, when_others: datetime) -> tuple[bytes, bytes, bytes]:
    """(what precedes Bob's message, Bob's stored message, what follows): neighbours with
    an unquoted "From " body line, quoted ones of both depths, and a last message with no
    blank line after it."""
    carol = _stamp(when_others) + message(
        "carol@example.org", "a@company.test", "carol's",
        "Dear team,\n\nFrom now on the office opens at nine.\n") + b"\n"
    bob = _stamp(when_bob) + message(BOB, "a@company.test", "bob's", "Hi, it is Bob.\n") + b"\n"
    dave = _stamp(when_others) + message(
        "dave@example.org", "a@company.test", "dave's",
        ">From the minutes:\n>>From an older thread\n") + b"\n"
    erin = _stamp(when_others) + message("erin@example.org", "a@company.test", "erin's",
                                         "no blank line follows me")
    return carol, bob, dave + erin


def _bob() -> Subject:
    return Subject("req-bob", (Identifier.parse(IdentifierType.EMAIL, BOB),))


def test_erasing_keeps_every_neighbour_byte_exact(tmp_path: Path) -> None:
    box = tmp_path / "archive.mbox"
    now = datetime.now(UTC)
    before, bob, after = _world(now, now)
    box.write_bytes(before + bob + after)
    conn = MailConnector("archive", MailSettings(backend="mbox", path=box))
    found = list(conn.find([_bob()]))
    assert len(found) == 1
    assert {o.status for o in conn.delete(found)} == {ItemStatus.DONE}
    assert box.read_bytes() == before + after, "a neighbour's bytes changed"


def test_restricting_by_keyword_changes_only_the_subjects_message(tmp_path: Path) -> None:
    box = tmp_path / "archive.mbox"
    now = datetime.now(UTC)
    before, bob, after = _world(now, now)
    box.write_bytes(before + bob + after)
    conn = MailConnector("archive", MailSettings(backend="mbox", path=box))
    assert {o.status for o in conn.restrict(list(conn.find([_bob()])))} == {ItemStatus.DONE}
    data = box.read_bytes()
    assert data.startswith(before) and data.endswith(after)
    assert b"X-Keywords: " in data[len(before):-len(after)]


def test_the_sweep_keeps_every_neighbour_byte_exact(tmp_path: Path) -> None:
    box = tmp_path / "archive.mbox"
    now = datetime.now(UTC)
    before, old, after = _world(now - timedelta(days=800), now - timedelta(days=2))
    box.write_bytes(before + old + after)
    done = sweep_mbox(tmp_path, box, "archive")
    assert done.outcome == "completed" and done.deleted == 1
    assert box.read_bytes() == before + after, "a neighbour's bytes changed"


def test_a_message_moved_in_is_quoted_the_way_its_new_file_is() -> None:
    body = message(BOB, "a@company.test", "bob's", "From me to you.\n>From before.\n")
    stamp = b"From x@y Thu Dec  3 10:00:00 2026\n"
    counted = stamp + message("c@x.org", "d@x.org", "c", "From here on.\n").replace(
        b"\n\n", b"\nContent-Length: 14\n\n", 1) + b"\n"
    assert detect([counted]) == "mboxcl2"
    stored = quote(body, "mboxcl2")
    assert stored.endswith(b"\n\nFrom me to you.\n>From before.\n\n")  # nothing quoted
    assert b"Content-Length: 31\n" in stored
    assert quote(body, "mboxrd").endswith(b"\n>From me to you.\n>>From before.\n\n")
    bare = stamp + message("c@x.org", "d@x.org", "c", "From now on.\n") + b"\n"
    assert detect([bare]) == "none"
    assert quote(body, "none") == body  # no line a reader would take for a message start
    assert detect([]) == "mboxrd"
