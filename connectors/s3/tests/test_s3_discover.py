"""discover proposes rules per prefix from sampled objects, with counts and never a value."""

from __future__ import annotations

import json
import tomllib

from s3_fixtures import S3Server, gz, make_bucket


def test_discover_counts_without_values(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client)
    for n in range(3):
        client.put_object(Bucket=bucket, Key=f"customers/80012{n}/profile.json",
                          Body=json.dumps({"email": f"person{n}@example.org",
                                           "phone": "+4930123456"}).encode())
    client.put_object(Bucket=bucket, Key="logs/app.log.gz",
                      Body=gz("login ok for secret.person@example.org\n"))
    client.put_object(Bucket=bucket, Key="images/logo.png", Body=b"\x89PNG....")
    client.put_object(Bucket=bucket, Key="exports/alice@example.org.csv", Body=b"a,b\n1,2\n")
    conn = s3.connector([{"bucket": bucket, "content": "none"}])
    text = conn.discover()
    for value in ("person0@example.org", "+4930123456", "secret.person", "alice@example.org"):
        assert value not in text
    assert "prefix customers/: 3 object(s) listed, 3 sampled, 3 holding emails or phones " \
           "(3 emails, 3 phones)" in text
    assert "key(s) named after people" in text
    assert "prefix images/" in text and "nothing proposed" in text
    rules = tomllib.loads(text.replace("[[systems.files.rules]]", "[[rules]]"))["rules"]
    assert [r["prefix"] for r in rules] == ["customers/", "exports/", "logs/"]
    assert '# key_template = "customers/{customer_id}/"' in text
