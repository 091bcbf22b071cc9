"""Phones in object content as people write them: with spaces, dashes and brackets, in
national form with a region; found, erased row by row, verified gone; a longer number that
holds the subject's is someone else's and stays."""

from __future__ import annotations

from s3_fixtures import S3Server, body_of, make_bucket

from erasure import Identifier, ItemStatus, Subject

BOB = Subject("req-bob", (Identifier.parse("phone", "+441130000001"),))
LINES = [
    '{"event": "call", "note": "rang Bob on +44 113 000 0001 at 9"}\n',
    '{"event": "call", "note": "Carol: +44 113 000 00012"}\n',
    '{"event": "call", "note": "desk 0113-000-0001, ask for Bob"}\n',
    '{"event": "call", "note": "Dave, 0113 000 00012"}\n',
    '{"event": "sms", "to": "+44 (0)113 000 0001"}\n',
    '{"event": "sms", "to": "+4930123456"}\n',
]


def test_phones_in_content_in_any_written_form(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client)
    client.put_object(Bucket=bucket, Key="logs/calls.jsonl", Body="".join(LINES).encode())
    client.put_object(Bucket=bucket, Key="notes/bob.txt", Body=b"Bob: 0113 000 0001\n")
    client.put_object(Bucket=bucket, Key="notes/carol.txt", Body=b"Carol: 0113 000 00012\n")
    rules = [{"bucket": bucket, "prefix": "logs/", "mode": "rows"},
             {"bucket": bucket, "prefix": "notes/"}]
    international = s3.connector(rules)
    found = list(international.find([BOB]))
    assert len(found) == 2 and {f.kind for f in found} == {"row"}, "spaced, bracketed"

    conn = s3.connector(rules, phone_region="GB")
    found = list(conn.find([BOB]))
    rows = [f for f in found if f.kind == "row"]
    assert len(rows) == 3
    assert [f.ref for f in found if f.kind != "row"] == [f'["{bucket}","notes/bob.txt"]']
    assert {o.status for o in conn.delete(found)} == {ItemStatus.DONE}
    assert body_of(client, bucket, "logs/calls.jsonl") == "".join(
        LINES[i] for i in (1, 3, 5)).encode(), "a neighbour's line changed or went"
    assert body_of(client, bucket, "notes/carol.txt") == b"Carol: 0113 000 00012\n"
    assert list(conn.find([BOB])) == [], "a written form of the number is still there"
