"""Restriction by legal hold (and by tag where there is no object lock), holds blocking
deletion, buckets outside the allowed regions, and how S3 errors are classified."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from s3_fixtures import S3Server, all_versions, make_bucket

from erasure import AuthError, Identifier, ItemStatus, PermanentError, Subject, TransientError

BOB = Subject("req-bob", (Identifier.parse("customer_id", "800123"),))
RULE = {"prefix": "customers/", "key_template": "customers/{customer_id}/", "content": "none"}


def test_legal_hold_restricts_and_blocks_deletion(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client, lock=True)
    for _ in range(2):
        client.put_object(Bucket=bucket, Key="customers/800123/a.json", Body=b"{}")
    client.put_object(Bucket=bucket, Key="customers/800456/a.json", Body=b"{}")
    conn = s3.connector([{"bucket": bucket, **RULE}])
    found = list(conn.find([BOB]))
    assert [o.status for o in conn.restrict(found)] == [ItemStatus.DONE]
    versions = all_versions(client, bucket, "customers/800123/")
    for key, vid, _ in versions:
        assert client.head_object(Bucket=bucket, Key=key,
                                  VersionId=vid)["ObjectLockLegalHoldStatus"] == "ON"
    assert [o.status for o in conn.restrict(found)] == [ItemStatus.ALREADY_DONE]
    carol = client.head_object(Bucket=bucket, Key="customers/800456/a.json")
    assert carol.get("ObjectLockLegalHoldStatus") != "ON"

    (kept,) = conn.delete(found)
    assert kept.status is ItemStatus.RETAINED and kept.held, "a hold that may be lifted"
    assert kept.error == "legal hold on 2 version(s) until released"
    assert all_versions(client, bucket, "customers/800123/") == versions, "nothing changed"

    for key, vid, _ in versions:  # the hold is lifted: the erasure can go on
        client.put_object_legal_hold(Bucket=bucket, Key=key, VersionId=vid,
                                     LegalHold={"Status": "OFF"})
    assert [o.status for o in conn.delete(found)] == [ItemStatus.DONE]
    assert all_versions(client, bucket, "customers/800123/") == []
    assert len(all_versions(client, bucket, "customers/800456/")) == 1


def test_retention_date_keeps_the_object_and_is_named(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client, lock=True)
    client.put_object(Bucket=bucket, Key="customers/800123/a.json", Body=b"{}",
                      ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=dt.datetime(2031, 3, 1, tzinfo=dt.UTC))
    conn = s3.connector([{"bucket": bucket, **RULE}])
    (kept,) = conn.delete(list(conn.find([BOB])))
    assert (kept.status, kept.held) == (ItemStatus.RETAINED, True)
    assert kept.error == "object lock retention on 1 version(s) until 2031-03-01"
    assert len(all_versions(client, bucket)) == 1


def test_tag_restricts_where_there_is_no_object_lock(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client)
    client.put_object(Bucket=bucket, Key="customers/800123/a.json", Body=b"{}",
                      Tagging="team=crm")
    conn = s3.connector([{"bucket": bucket, **RULE}], restrict_tag="gdpr-restricted")
    found = list(conn.find([BOB]))
    assert [o.status for o in conn.restrict(found)] == [ItemStatus.DONE]
    tags = client.get_object_tagging(Bucket=bucket, Key="customers/800123/a.json")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [
        ("gdpr-restricted", "true"), ("team", "crm")]
    with_hold = s3.connector([{"bucket": bucket, **RULE}], restrict_with="legal_hold")
    (o,) = with_hold.restrict(found)
    assert o.status is ItemStatus.FAILED and "object lock" in (o.error or "")
    with pytest.raises(PermanentError, match="no object lock"):
        with_hold.check()


def test_bucket_outside_the_allowed_regions_is_flagged(s3: S3Server) -> None:
    client = s3.client()
    eu = make_bucket(client)
    us = make_bucket(client, region="us-west-2")
    for bucket in (eu, us):
        client.put_object(Bucket=bucket, Key="customers/800123/a.json", Body=b"{}")
    conn = s3.connector([{"bucket": eu, **RULE}, {"bucket": us, **RULE}])
    kinds = {f.ref: (f.kind, f.fields) for f in conn.find([BOB])}
    assert kinds == {
        f'["{eu}","customers/800123/a.json"]': ("object", ("key",)),
        f'["{us}","customers/800123/a.json"]': ("object-outside-residency",
                                                ("key", "region:us-west-2")),
    }
    with pytest.raises(PermanentError, match=f"bucket {us} is in us-west-2, outside"):
        conn.check()
    s3.connector([{"bucket": eu, **RULE}]).check()
    # The allowed list is configurable: a US bucket may be allowed on purpose.
    s3.connector([{"bucket": us, **RULE}], allowed_regions=["us-west-2"]).check()


def fault(status: int, code: str) -> Any:
    """A before-send hook answering every request with an S3 error."""
    def answer(**_: Any) -> AWSResponse:
        body = (f"<Error><Code>{code}</Code><Message>injected</Message></Error>").encode()
        return AWSResponse("http://fault", status, {"Content-Type": "application/xml"},
                           _Raw(body))
    return answer


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


@pytest.mark.parametrize(("status", "code", "error"), [
    (503, "SlowDown", TransientError), (500, "InternalError", TransientError),
    (403, "AccessDenied", AuthError), (404, "NoSuchBucket", PermanentError),
])
def test_errors_are_classified(s3: S3Server, status: int, code: str, error: type) -> None:
    bucket = make_bucket(s3.client())
    conn = s3.connector([{"bucket": bucket, **RULE}], sdk_max_attempts=1)
    conn.client.meta.events.register_first("before-send.s3", fault(status, code))
    with pytest.raises(error) as caught:
        list(conn.find([BOB]))
    assert code in str(caught.value) and "800123" not in str(caught.value)
    assert isinstance(caught.value, TransientError) == (error is TransientError)
