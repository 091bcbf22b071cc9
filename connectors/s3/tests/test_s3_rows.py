"""Shared files (a CSV export of all customers, a JSON Lines event log, gzip too): only the
subject's rows go, every other row stays byte for byte, and the older versions that still
hold the subject's rows are deleted."""

from __future__ import annotations

import gzip
from typing import Any

from s3_fixtures import S3Server, all_versions, body_of, gz, make_bucket

from erasure import Identifier, ItemStatus, Subject

BOB = Subject("req-bob", (Identifier.parse("email", "bob@example.org"),
                          Identifier.parse("phone", "+4930123456")))
ALICE_ROW = "800321,alice@example.org,+4930123456,Alice Abbott\n"  # shares Bob's phone
CSV_OLD = ("customer_id,email,phone,name\n"
           "800123,bob@example.org,+4930123456,Bob Baker (old)\n"
           "800456,carol@example.org,+4930555111,Carol Cook\n")
CSV = ("customer_id,email,phone,name\r\n".replace("\r\n", "\n")
       + "800123,BOB@example.org,+4930123456,\"Baker, Bob\"\n"
       + "8001234,jimbob@example.org,+49301234567,Jimbob Baker\n"
       + ALICE_ROW
       + "800456,carol@example.org,+4930555111,\"Cook,  Carol \"\n")


def rows_rule(bucket: str, **extra: Any) -> dict[str, Any]:
    return {"bucket": bucket, "prefix": "exports/", "mode": "rows", **extra}


def own(found: list[Any]) -> list[Any]:
    """Findings matched through Bob's email (not the phone Alice shares)."""
    return [f for f in found if any(i.type.value == "email" for i in f.matched)]


def test_csv_rows_rewritten_and_old_versions_deleted(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client, versioned=True)
    client.put_object(Bucket=bucket, Key="exports/customers.csv", Body=CSV_OLD.encode())
    client.put_object(Bucket=bucket, Key="exports/customers.csv", Body=CSV.encode(),
                      ContentType="text/csv", Metadata={"export": "daily"})
    client.put_object(Bucket=bucket, Key="exports/other.csv",
                      Body=b"customer_id,email\n800456,carol@example.org\n")
    conn = s3.connector([rows_rule(bucket)])
    found = list(conn.find([BOB]))
    # Bob's row now and his older row; Alice's row is found through the shared phone only.
    assert len(own(found)) == 2
    alice = [f for f in found if f not in own(found)]
    assert len(alice) == 1 and [i.type.value for i in alice[0].matched] == ["phone"]
    records = list(conn.export(own(found)))
    assert {r.data["row"]["name"] for r in records} == {"Baker, Bob", "Bob Baker (old)"}

    outcomes = list(conn.delete(own(found)))
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    versions = all_versions(client, bucket, "exports/customers.csv")
    assert len(versions) == 1, "the older versions holding Bob's rows are gone"
    after = body_of(client, bucket, "exports/customers.csv")
    assert after == CSV.replace("800123,BOB@example.org,+4930123456,\"Baker, Bob\"\n",
                                "").encode()
    head = client.head_object(Bucket=bucket, Key="exports/customers.csv")
    assert head["Metadata"] == {"export": "daily"} and head["ContentType"] == "text/csv"
    assert own(list(conn.find([BOB]))) == []
    assert [f.ref for f in conn.find([BOB])] == [alice[0].ref], "Alice's row is untouched"
    assert {o.status for o in conn.delete(own(found))} == {ItemStatus.ALREADY_DONE}
    assert body_of(client, bucket, "exports/other.csv").startswith(b"customer_id")


def test_gzip_json_lines_rows(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client, versioned=True)
    lines = [
        '{"event": "login", "email": "bob@example.org", "ip": "192.0.2.10"}\n',
        '{"event":"login","email":"jimbob@example.org"}\n',
        '{ "event" : "note", "text": "call +49301234567 or mail jimbob@example.org" }\n',
        '{"event": "note", "text": "Bob wrote from bob@example.org."}\n',
        '{"event": "order",   "user": {"email": "carol@example.org"}, "n": [1, 2]}\n',
    ]
    client.put_object(Bucket=bucket, Key="exports/events.jsonl.gz", Body=gz("".join(lines)))
    conn = s3.connector([rows_rule(bucket)])
    found = list(conn.find([BOB]))
    assert len(found) == 2 and all(f.kind == "row" for f in found)
    assert {o.status for o in conn.delete(found)} == {ItemStatus.DONE}
    raw = client.get_object(Bucket=bucket, Key="exports/events.jsonl.gz")["Body"].read()
    assert raw.startswith(b"\x1f\x8b"), "written back compressed"
    assert gzip.decompress(raw) == "".join(lines[1:3] + lines[4:]).encode()
    assert len(all_versions(client, bucket)) == 1
    assert list(conn.find([BOB])) == []


def test_whole_gzip_object_found_exported_and_erased(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client)  # unversioned: a put replaces, a delete removes
    client.put_object(Bucket=bucket, Key="uploads/tickets.jsonl.gz",
                      Body=gz('{"from": "Bob@Example.org", "body": "hello"}\n'))
    client.put_object(Bucket=bucket, Key="uploads/jim.jsonl.gz",
                      Body=gz('{"from": "jimbob@example.org", "phone": "+49301234567"}\n'))
    conn = s3.connector([{"bucket": bucket, "prefix": "uploads/"}])
    found = list(conn.find([BOB]))
    assert [f.ref for f in found] == [f'["{bucket}","uploads/tickets.jsonl.gz"]']
    (record,) = conn.export(found)
    assert record.data["content"] == [{"from": "Bob@Example.org", "body": "hello"}]
    assert [o.status for o in conn.delete(found)] == [ItemStatus.DONE]
    assert [k for k, _, _ in all_versions(client, bucket)] == ["uploads/jim.jsonl.gz"]
