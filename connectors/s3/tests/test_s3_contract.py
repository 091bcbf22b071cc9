"""The s3 connector passes the connector contract suite against a moto S3 server.

Every subject has a profile under ``customers/{customer_id}/`` (found by the key template
and by its JSON content) and, unless single, a gzip text upload found by content, user
metadata and a tag. The bucket is versioned, so every find also reads old versions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from erasure_s3 import S3Connector
from s3_fixtures import S3Server, gz, make_bucket

from erasure import Finding, IdentifierType, Subject
from erasure.testing import ConnectorContract, Seeded

T = IdentifierType


def contract_rules(bucket: str) -> list[dict[str, object]]:
    return [
        {"bucket": bucket, "prefix": "customers/", "key_template": "customers/{customer_id}/",
         "fields": {"user_id": "user_id"}},
        {"bucket": bucket, "prefix": "uploads/", "metadata": {"user-id": "user_id"},
         "tags": {"owner": "email"}},
    ]


class TestS3Contract(ConnectorContract):
    seed_types = frozenset({T.EMAIL, T.PHONE, T.CUSTOMER_ID, T.USER_ID})
    # moto takes ~0.1 s an object: a small large scenario here, read in listing pages and
    # DeleteObjects calls of page_size keys (3: the 10 items are four of each);
    # ERASURE_CONTRACT_POPULATION (make test-long) runs past S3's 1,000-key pages too
    population = 10
    page_size = 3

    @pytest.fixture
    def connector(self, s3: S3Server) -> S3Connector:
        self.client = s3.client()
        self.bucket = make_bucket(self.client, versioned=True)
        return s3.connector(contract_rules(self.bucket), page_size=self.page_size)

    def seed(self, connector: S3Connector, subject: Subject, *,
             single: bool = False) -> Seeded:
        (email,), (phone,) = subject.of_type(T.EMAIL), subject.of_type(T.PHONE)
        (cid,), (uid,) = subject.of_type(T.CUSTOMER_ID), subject.of_type(T.USER_ID)
        profile = {"email": email, "phone": phone, "user_id": uid,
                   "note": f"profile of {subject.key}"}
        self.client.put_object(Bucket=self.bucket, Key=f"customers/{cid}/profile.json",
                               Body=json.dumps(profile).encode(),
                               ContentType="application/json")
        markers = {email, phone, uid, profile["note"]}
        if single:
            return Seeded(items=1, markers=markers)
        text = f"upload of {subject.key}\ncontact {email} or {phone}, thanks.\n"
        self.client.put_object(Bucket=self.bucket, Key=f"uploads/{subject.key}.txt.gz",
                               Body=gz(text), Metadata={"user-id": uid},
                               Tagging=f"owner={email}")
        return Seeded(items=2, markers=markers | {f"upload of {subject.key}"})

    def seed_many(self, connector: S3Connector, subject: Subject, count: int) -> Seeded:
        # count uploads of the subject, each under its own key (a profile's key is one)
        (email,), (uid,) = subject.of_type(T.EMAIL), subject.of_type(T.USER_ID)
        for n in range(count):
            self.client.put_object(Bucket=self.bucket, Key=f"uploads/{subject.key}-{n}.txt",
                                   Body=f"upload {n}\n".encode(), Metadata={"user-id": uid},
                                   Tagging=f"owner={email}")
        return Seeded(items=count, markers={email, uid})

    def restricted(self, connector: S3Connector, findings: Sequence[Finding]) -> set[str]:
        # The tag on the newest version, as an operator would read it.
        out = set()
        for f in findings:
            bucket, key = json.loads(f.ref)[:2]
            tags = self.client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
            if any(t["Key"] == "erasure-restricted" for t in tags):
                out.add(f.ref)
        return out
