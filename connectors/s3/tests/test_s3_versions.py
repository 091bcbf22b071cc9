"""Versioned buckets: every version and delete marker goes, in ceil(K/1000) calls, and a
hold or a per-key error in a 200 response is reported, never taken for success."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from s3_fixtures import S3Server, all_versions, make_bucket

from erasure import Identifier, ItemStatus, Subject

BOB = Subject("req-bob", (Identifier.parse("customer_id", "800123"),
                          Identifier.parse("email", "bob@example.org")))


def template_rule(bucket: str, **extra: Any) -> dict[str, Any]:
    return {"bucket": bucket, "prefix": "customers/", "key_template": "customers/{customer_id}/",
            **extra}


def put_history(client: Any, bucket: str, key: str, marker: bool = True) -> None:
    """Three versions of ``key`` and, with ``marker``, a delete marker on top."""
    for n in range(3):
        client.put_object(Bucket=bucket, Key=key, Body=f'{{"rev": {n}}}'.encode())
    if marker:
        client.delete_object(Bucket=bucket, Key=key)


def test_every_version_and_marker_is_erased(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client, versioned=True)
    for name in ("a.json", "b.json", "c.txt"):
        put_history(client, bucket, f"customers/800123/{name}")
    put_history(client, bucket, "customers/800456/a.json")  # Carol
    put_history(client, bucket, "customers/8001234/a.json", marker=False)  # Jimbob
    conn = s3.connector([template_rule(bucket, content="none")])
    others = sorted(all_versions(client, bucket, "customers/8001234/"))
    others += sorted(all_versions(client, bucket, "customers/800456/"))
    assert len(others) == 7

    found = list(conn.find([BOB]))
    # Found although every latest version is a delete marker: the old versions hold data.
    assert sorted(f.ref for f in found) == sorted(
        f'["{bucket}","customers/800123/{n}"]' for n in ("a.json", "b.json", "c.txt"))
    assert {o.status for o in conn.delete(found)} == {ItemStatus.DONE}
    assert all_versions(client, bucket, "customers/800123/") == []
    assert sorted(all_versions(client, bucket, "customers/8001234/")) + sorted(
        all_versions(client, bucket, "customers/800456/")) == others
    assert list(conn.find([BOB])) == []
    assert {o.status for o in conn.delete(found)} == {ItemStatus.ALREADY_DONE}


def test_data_only_in_an_old_version_is_found(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client, versioned=True)
    client.put_object(Bucket=bucket, Key="logs/a.jsonl", Body=b'{"email": "bob@example.org"}\n')
    client.put_object(Bucket=bucket, Key="logs/a.jsonl", Body=b'{"email": "carol@example.org"}\n')
    conn = s3.connector([{"bucket": bucket, "prefix": "logs/"}])
    found = list(conn.find([BOB]))
    assert len(found) == 1 and found[0].fields == ("content:jsonl",)
    assert [o.status for o in conn.delete(found)] == [ItemStatus.DONE]
    assert all_versions(client, bucket) == []


def test_every_version_holding_the_subject_is_exported(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client, versioned=True)
    key = "customers/800123/profile.json"
    ids = []
    for street in ("Old Road 1", "Middle Lane 2", "New Street 3"):
        ids.append(client.put_object(Bucket=bucket, Key=key, Body=json.dumps(
            {"email": "bob@example.org", "address": street}).encode())["VersionId"])
    # A shared log whose newer version no longer holds Bob: only the old one is his.
    old = client.put_object(Bucket=bucket, Key="logs/a.jsonl",
                            Body=b'{"email": "bob@example.org", "ip": "192.0.2.1"}\n')
    client.put_object(Bucket=bucket, Key="logs/a.jsonl",
                      Body=b'{"email": "carol@example.org"}\n')
    conn = s3.connector([template_rule(bucket), {"bucket": bucket, "prefix": "logs/"}])
    records = list(conn.export(list(conn.find([BOB]))))
    profile = [r.data for r in records if r.data["key"] == key]
    assert [r["version_id"] for r in profile] == ids[::-1], "three versions, newest first"
    assert [r["content"]["address"] for r in profile] == [
        "New Street 3", "Middle Lane 2", "Old Road 1"]
    assert [r["latest"] for r in profile] == [True, False, False]
    assert all(r["last_modified"].startswith("20") for r in profile)
    (log,) = [r.data for r in records if r.data["key"] == "logs/a.jsonl"]
    assert log["version_id"] == old["VersionId"], "Carol's version is not in Bob's package"
    assert "carol" not in json.dumps(log)


class Calls:
    """Counts requests per operation through botocore's event hooks."""

    def __init__(self, client: Any) -> None:
        self.counts: dict[str, int] = {}
        client.meta.events.register("before-send.s3", self._count)

    def _count(self, event_name: str, **_: Any) -> None:
        op = event_name.rsplit(".", 1)[-1]
        self.counts[op] = self.counts.get(op, 0) + 1


def test_more_than_1000_versions_cost_ceil_k_over_1000_calls(s3: S3Server) -> None:
    client = s3.client(max_pool_connections=16)
    bucket = make_bucket(client, versioned=True)
    keys = [f"customers/800123/f{n:04d}" for n in range(170)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
    for _ in range(5):  # five delete markers on each key: 6 versions per key, cheaply
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys],
                                                     "Quiet": True})
    put_history(client, bucket, "customers/800456/a.json")
    k = len(all_versions(client, bucket, "customers/800123/"))
    assert k == 1020
    conn = s3.connector([template_rule(bucket, content="none")])
    found = list(conn.find([BOB]))
    assert len(found) == 170
    calls = Calls(conn.client)
    outcomes = list(conn.delete(found))
    assert {o.status for o in outcomes} == {ItemStatus.DONE} and len(outcomes) == 170
    assert calls.counts.get("DeleteObjects") == math.ceil(k / 1000)
    # The listing pages of the plan, and one page of the listing that verifies.
    assert calls.counts.get("ListObjectVersions") == math.ceil(k / 1000) + 1
    assert all_versions(client, bucket, "customers/800123/") == []
    assert len(all_versions(client, bucket, "customers/800456/")) == 4


def test_page_size_sizes_every_listing_and_delete_call(s3: S3Server) -> None:
    # A store that answers smaller pages (page_size): every page is still read, and
    # DeleteObjects goes in calls of that many keys.
    client = s3.client()
    bucket = make_bucket(client, versioned=True)
    for n in range(7):
        client.put_object(Bucket=bucket, Key=f"customers/800123/f{n}", Body=b"x")
    conn = s3.connector([template_rule(bucket, content="none")], page_size=3)
    calls = Calls(conn.client)
    found = list(conn.find([BOB]))
    assert len(found) == 7
    assert calls.counts.get("ListObjectVersions", 0) >= 3  # 7 versions in pages of 3
    calls.counts.clear()
    outcomes = list(conn.delete(found))
    assert [o.status for o in outcomes] == [ItemStatus.DONE] * 7
    assert calls.counts.get("DeleteObjects") == 3
    assert all_versions(client, bucket, "customers/800123/") == []


def test_a_per_key_error_in_a_200_is_a_failed_item(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client, versioned=True)
    for name in ("a", "b"):
        put_history(client, bucket, f"customers/800123/{name}")
    conn = s3.connector([template_rule(bucket, content="none")])
    found = list(conn.find([BOB]))
    held_back: list[dict[str, str]] = []

    def drop_one(params: dict[str, Any], **_: Any) -> None:
        # S3 keeps one version and says so inside the 200 response.
        objects = params["Delete"]["Objects"]
        victim = next(o for o in objects if o["Key"].endswith("/a"))
        objects.remove(victim)
        held_back.append(victim)

    def report(parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("Errors", []).extend(
            {"Key": o["Key"], "VersionId": o["VersionId"], "Code": "SlowDown"}
            for o in held_back[:1])

    conn.client.meta.events.register("before-parameter-build.s3.DeleteObjects", drop_one)
    conn.client.meta.events.register("after-call.s3.DeleteObjects", report)
    outcomes = {o.finding.ref.split("/")[-1]: o for o in conn.delete(found)}
    assert outcomes['a"]'].status is ItemStatus.FAILED and outcomes['a"]'].transient
    assert "SlowDown" in (outcomes['a"]'].error or "")
    assert outcomes['b"]'].status is ItemStatus.DONE
    assert len(all_versions(client, bucket, "customers/800123/a")) == 1
    conn.client.meta.events.unregister("before-parameter-build.s3.DeleteObjects", drop_one)
    conn.client.meta.events.unregister("after-call.s3.DeleteObjects", report)
    again = {o.finding.ref.split("/")[-1]: o.status for o in conn.delete(found)}
    assert again == {'a"]': ItemStatus.DONE, 'b"]': ItemStatus.ALREADY_DONE}
    assert all_versions(client, bucket, "customers/800123/") == []
