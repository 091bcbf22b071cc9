"""Unfinished multipart uploads under a subject's keys: found by key template, exported as
what can be known of them (their parts cannot be read back), aborted and verified gone;
stale ones named by `systems check`."""

from __future__ import annotations

from typing import Any

from s3_fixtures import S3Server, make_bucket

from erasure import Identifier, ItemStatus, Subject

BOB = Subject("req-bob", (Identifier.parse("customer_id", "800123"),))
RULE = {"prefix": "customers/", "key_template": "customers/{customer_id}/"}


def start_upload(client: Any, bucket: str, key: str, part: bytes) -> str:
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=part)
    return str(upload)


def uploads(client: Any, bucket: str) -> list[tuple[str, str]]:
    return sorted((u["Key"], u["UploadId"])
                  for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_upload_under_the_subjects_key_is_found_exported_aborted(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client, versioned=True)
    part = b"email,name\nbob@example.org,Bob\n" * 10
    bob = start_upload(client, bucket, "customers/800123/export.csv", part)
    others = [("customers/800456/export.csv",
               start_upload(client, bucket, "customers/800456/export.csv", b"carol")),
              ("customers/8001234/a.csv",
               start_upload(client, bucket, "customers/8001234/a.csv", b"jimbob"))]
    conn = s3.connector([{"bucket": bucket, **RULE}])

    (found,) = conn.find([BOB])
    assert found.kind == "upload" and found.fields == ("key",)
    assert found.ref == f'["{bucket}","customers/800123/export.csv","upload","{bob}"]'

    (record,) = conn.export([found])
    assert record.data["upload_id"] == bob and record.data["key"].endswith("export.csv")
    assert record.data["initiated"].startswith("20")
    assert [(p["part"], p["size"]) for p in record.data["parts"]] == [(1, len(part))]
    assert "no call that reads its parts" in record.data["content_note"]

    (held,) = conn.restrict([found])
    assert held.status is ItemStatus.NOT_SUPPORTED

    assert [o.status for o in conn.delete([found])] == [ItemStatus.DONE]
    assert uploads(client, bucket) == sorted(others), "only Bob's upload is aborted"
    assert list(conn.find([BOB])) == []
    assert [o.status for o in conn.delete([found])] == [ItemStatus.ALREADY_DONE]


def test_an_upload_writing_a_new_version_of_the_subjects_object_is_found(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client)
    client.put_object(Bucket=bucket, Key="tickets/t1.json", Body=b'{"from": "bob@example.org"}')
    client.put_object(Bucket=bucket, Key="tickets/t2.json", Body=b'{"from": "carol@x.org"}')
    mine = start_upload(client, bucket, "tickets/t1.json", b"new version")
    start_upload(client, bucket, "tickets/t2.json", b"carol's")
    # In rows mode an upload is of a shared file, everyone's: never the subject's finding.
    client.put_object(Bucket=bucket, Key="exports/all.csv", Body=b"email\nbob@example.org\n")
    start_upload(client, bucket, "exports/all.csv", b"everyone")
    conn = s3.connector([{"bucket": bucket, "prefix": "tickets/"},
                         {"bucket": bucket, "prefix": "exports/", "mode": "rows"}])
    bob = Subject("req-bob", (Identifier.parse("email", "bob@example.org"),))
    found = {f.ref: f for f in conn.find([bob])}
    upload = f'["{bucket}","tickets/t1.json","upload","{mine}"]'
    assert sorted(f.kind for f in found.values()) == ["object", "row", "upload"]
    assert found[upload].fields == ("object",)
    assert [o.status for o in conn.delete([found[upload]])] == [ItemStatus.DONE]
    assert [k for k, _ in uploads(client, bucket)] == ["exports/all.csv", "tickets/t2.json"]


def test_stale_uploads_are_named_by_check(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client)
    start_upload(client, bucket, "customers/800456/a.csv", b"x")
    start_upload(client, bucket, "elsewhere/b.csv", b"y")  # outside every rule's prefix
    rules = [{"bucket": bucket, **RULE}]
    # moto dates every upload 2010-11-10: older than the default 7 days, not than 50 years.
    (line,) = s3.connector(rules).advice()
    assert line.startswith(f"bucket {bucket}: 1 unfinished multipart upload(s) started more "
                           "than 7 day(s) ago (the oldest 2010-11-10)")
    assert "800456" not in line
    assert s3.connector(rules, stale_upload_days=50 * 365).advice() == []
