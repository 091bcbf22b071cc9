"""mbox files that count lengths (mboxcl2: Content-Length, no "From " quoting): a body's
"From " line never starts a message when the message's Content-Length says where it ends,
so erasing, restricting or sweeping someone never cuts a neighbour's message short. A length
that does not match (too long, too short, past the end) is never believed, and the messages
whose end it leaves in doubt are kept, failed for a person to review, never cut.

The tester's case (issue 27): Bob forwards a mail whose first line is Zed's "From " line;
Zed's own message follows. Erasing Zed once took the forward as a message of Zed's and cut
Bob's message after "Here is the forwarded mail:"."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from erasure_mail import MailConnector, MailSettings
from erasure_mail.mbox import UNSURE
from erasure_mail.quoting import quote
from erasure_mail.scan import Needles, mbox_bounds, mbox_entries, mbox_messages, mbox_spans
from mail_fixtures import sweep_mbox

from erasure import Identifier, IdentifierType, ItemStatus, Subject

ZED = "zed@s3.test"


def _asc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%a %b %e %H:%M:%S %Y")


def _bob(when: datetime = datetime(2026, 12, 7, 10, tzinfo=UTC),
         forwarded: datetime = datetime(2026, 12, 7, 9, tzinfo=UTC),
         length: int | None = None) -> bytes:
    """Bob's message, exactly as the tester wrote it (Content-Length 123 by default)."""
    body = (f"Here is the forwarded mail:\nFrom {ZED} {_asc(forwarded)}\n"
            f"From: Zed <{ZED}>\nSubject: fwd\n\nhello from zed\n").encode()
    assert len(body) == 123
    return (f"From bob@s3.test {_asc(when)}\nFrom: Bob <bob@s3.test>\nTo: shop@shop.test\n"
            f"Subject: fw\nDate: Mon, 07 Dec 2026 10:00:00 +0000\nMessage-ID: <b9@s3.test>\n"
            f"Content-Length: {len(body) if length is None else length}\n\n").encode() \
        + body + b"\n"


def _zed(when: datetime = datetime(2026, 12, 7, 10, tzinfo=UTC)) -> bytes:
    return (f"From {ZED} {_asc(when)}\nFrom: Zed <{ZED}>\nTo: shop@shop.test\n"
            f"Subject: mine\nDate: Mon, 07 Dec 2026 11:00:00 +0000\n"
            f"Message-ID: <z9@s3.test>\nContent-Length: 18\n\nzed's own message\n\n").encode()


def _subject() -> Subject:
    return Subject("req-zed", (Identifier.parse(IdentifierType.EMAIL, ZED),))


def _conn(box: Path, **settings: object) -> MailConnector:
    return MailConnector("mb", MailSettings(backend="mbox", path=box, **settings))


def test_the_testers_mbox_is_read_as_its_two_messages() -> None:
    data = _bob() + _zed()
    assert list(mbox_messages(io.BytesIO(data))) == [_bob(), _zed()]
    for size in (7, 40, 64, 200):  # wherever the chunks end
        assert [(s.end - s.start, s.unsure) for s in
                mbox_bounds(io.BytesIO(data), chunk_size=size)] == [
            (len(_bob()), False), (len(_zed()), False)]


def test_erasing_zed_keeps_bobs_forward_byte_exact(tmp_path: Path) -> None:
    box = tmp_path / "mbox"
    box.write_bytes(_bob() + _zed())
    conn = _conn(box)
    found = list(conn.find([_subject()]))
    # Bob's forward names Zed only in its body: not a finding (body search is off)
    assert [f.fields for f in found] == [("from",)]
    assert [o.status for o in conn.delete(found)] == [ItemStatus.DONE]
    assert box.read_bytes() == _bob(), "Bob's message changed"


def test_a_body_mention_is_a_finding_only_with_search_body(tmp_path: Path) -> None:
    box = tmp_path / "mbox"
    box.write_bytes(_bob() + _zed())
    found = list(_conn(box, search_body=True).find([_subject()]))
    assert sorted(f.fields for f in found) == [("body",), ("from",)]


def test_restricting_zed_keeps_bobs_forward_byte_exact(tmp_path: Path) -> None:
    box = tmp_path / "mbox"
    box.write_bytes(_bob() + _zed())
    conn = _conn(box)
    assert [o.status for o in conn.restrict(list(conn.find([_subject()])))] == [ItemStatus.DONE]
    data = box.read_bytes()
    assert data.startswith(_bob())
    assert data[len(_bob()):] == _zed().replace(b"\n\nzed's", b"\nX-Keywords: $Restricted"
                                                b"\n\nzed's")


def test_moving_zed_to_the_restricted_folder_keeps_bobs_forward(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "INBOX").write_bytes(_bob() + _zed())
    conn = _conn(folder, restricted_folder="Restricted")
    assert [o.status for o in conn.restrict(list(conn.find([_subject()])))] == [ItemStatus.DONE]
    assert (folder / "INBOX").read_bytes() == _bob()
    assert list(mbox_messages(io.BytesIO((folder / "Restricted").read_bytes())))[0].endswith(
        b"\n\nzed's own message\n\n")


def test_the_sweep_keeps_bobs_forward_of_an_old_mail(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=800)
    box = tmp_path / "mbox"
    # Bob's message is recent; the mail he forwards, and Zed's own, are past retention
    box.write_bytes(_bob(when=now, forwarded=old) + _zed(when=old))
    done = sweep_mbox(tmp_path, box, "mb")
    assert done.outcome == "completed" and done.deleted == 1
    assert box.read_bytes() == _bob(when=now, forwarded=old), "Bob's message changed"


@pytest.mark.parametrize("length", [100, 27, 122, 125, 150, 10_000, "12x"])
def test_a_length_that_does_not_match_cuts_nothing(tmp_path: Path, length: int | str) -> None:
    # too short (in the forward, one byte short of it, one byte short of the end), too long
    # (into Zed's message, past the end of the file), not a number: Bob's message may end
    # at the forward's "From " line or at Zed's, so neither the forward nor Zed's own
    # message (whose start is in doubt) is cut out; a person reviews them.
    box = tmp_path / "mbox"
    data = _bob().replace(b"Content-Length: 123", f"Content-Length: {length}".encode()) + _zed()
    box.write_bytes(data)
    conn = _conn(box)
    found = list(conn.find([_subject()]))
    assert found, "a message that could be searched reported as found 0"
    outcomes = list(conn.delete(found))
    assert {(o.status, o.error) for o in outcomes} == {(ItemStatus.FAILED, UNSURE)}
    assert {(o.status, o.error) for o in conn.restrict(found)} == {(ItemStatus.FAILED, UNSURE)}
    assert box.read_bytes() == data, "bytes changed in a message whose end is unsure"


def test_a_length_that_counts_the_blank_line_is_believed(tmp_path: Path) -> None:
    box = tmp_path / "mbox"
    box.write_bytes(_bob(length=124) + _zed())
    conn = _conn(box)
    assert [o.status for o in conn.delete(list(conn.find([_subject()])))] == [ItemStatus.DONE]
    assert box.read_bytes() == _bob(length=124)


def test_messages_after_a_believed_length_are_sure_again(tmp_path: Path) -> None:
    # Bob's wrong length puts the forward and the next message in doubt; that message's own
    # length is believed, so what follows it (a second message of Zed's) is erased.
    box = tmp_path / "mbox"
    later = _zed().replace(b"z9@", b"z10@").replace(b"own message", b"2nd message")
    bad = _bob(length=100)
    box.write_bytes(bad + _zed() + later)
    conn = _conn(box)
    outcomes = {o.finding.ref: (o.status, o.error) for o in conn.delete(
        list(conn.find([_subject()])))}
    assert sorted(outcomes.values(), key=str) == sorted(
        [(ItemStatus.FAILED, UNSURE), (ItemStatus.FAILED, UNSURE), (ItemStatus.DONE, None)],
        key=str)
    assert box.read_bytes() == bad + _zed()


def test_a_stale_length_in_a_file_that_does_not_count_is_ignored(tmp_path: Path) -> None:
    # mboxrd, one message with a Content-Length its quoting made wrong: the file does not
    # count lengths ("From " lines split it, quoted bodies cannot), nothing is in doubt
    box = tmp_path / "mbox"
    stamp = b"From x@y Mon Dec  7 10:00:00 2026\n"
    others = b"".join(stamp + f"From: p{i}@x.test\nSubject: {i}\n\nhi\n\n".encode()
                      for i in range(3))
    stale = stamp + f"From: {ZED}\nContent-Length: 9\n\n>From here\n\n".encode()
    box.write_bytes(others + stale + others)
    conn = _conn(box)
    assert [o.status for o in conn.delete(list(conn.find([_subject()])))] == [ItemStatus.DONE]
    assert box.read_bytes() == others + others


def test_a_moved_message_gets_the_length_of_its_new_body() -> None:
    # a counted message (its "From " body line unquoted) moved into an mboxrd folder: quoted
    # there, its length follows, so the folder's reader still believes it
    msg = b"From: z@x.test\nContent-Length: 18\n\nFrom me to you. x\n"
    stored = quote(msg, "mboxrd")
    assert stored == b"From: z@x.test\nContent-Length: 19\n\n>From me to you. x\n"
    data = b"From x@y Mon Dec  7 10:00:00 2026\n" + stored + b"\n"
    assert [s.unsure for s in mbox_bounds(io.BytesIO(data))] == [False]


@pytest.mark.parametrize("size", [50, 64, 300, 1000, 1 << 18])
def test_a_file_whose_lengths_start_late_is_split_the_same_in_every_read(size: int) -> None:
    # plain messages first (one of Zed's among them), the counted ones after: the readers
    # switch to the lengths at the chunk that holds the first one, wherever chunks end
    stamp = b"From x@y Mon Dec  7 10:00:00 2026\n"
    plain = [stamp + f"From: {ZED if i == 7 else f'p{i}@x.test'}\nSubject: {i}\n\nhi\n\n"
             .encode() for i in range(20)]
    msgs = [*plain, _bob(), _zed(), *plain[:3]]
    data = b"".join(msgs)
    assert list(mbox_messages(io.BytesIO(data), chunk_size=size)) == msgs
    spans = list(mbox_spans(io.BytesIO(data), Needles([ZED]), chunk_size=size))
    assert [data[s.start:s.end] for s in spans] == [plain[7], _bob(), _zed()]
    assert not any(s.unsure for s in spans)


def _uncounted(data: bytes) -> bytes:
    return b"".join(line for line in data.splitlines(True)
                    if not line.startswith(b"Content-Length"))


def test_without_lengths_a_from_line_right_after_text_cuts_nothing(tmp_path: Path) -> None:
    # the same mbox with no lengths and no quoting: the forward's "From " line is a message
    # start for every reader, but one right after a line of text (every writer ends a
    # message with a blank line) is a guess: the messages on both sides of it are kept and
    # failed for review; Zed's own message, after a blank line, is erased
    box = tmp_path / "mbox"
    bob = _uncounted(_bob())
    box.write_bytes(bob + _uncounted(_zed()))
    conn = _conn(box)
    found = list(conn.find([_subject()]))
    outcomes = sorted(((o.status, o.error) for o in conn.delete(found)), key=str)
    assert outcomes == sorted([(ItemStatus.DONE, None), (ItemStatus.FAILED, UNSURE)], key=str)
    assert box.read_bytes() == bob, "Bob's message changed"


@pytest.mark.parametrize("size", [50, 64, 300, 1 << 18])
def test_every_reader_doubts_the_same_from_lines(size: int) -> None:
    data = _uncounted(_bob() + _zed()) * 3
    entries = [u for _raw, u in mbox_entries(io.BytesIO(data), chunk_size=size)]
    assert entries == [True, True, False] * 3
    spans = list(mbox_spans(io.BytesIO(data), Needles([ZED]), chunk_size=size))
    assert [s.unsure for s in spans] == [True, False] * 3
