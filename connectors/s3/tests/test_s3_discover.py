"""discover proposes rules from sampled objects, with counts and never a value; a file
holding more than one person is proposed in rows mode, never for whole-object deletion."""

from __future__ import annotations

import json
import tomllib
from typing import Any

from erasure_s3.settings import Rule
from s3_fixtures import S3Server, gz, make_bucket


def proposed(text: str) -> dict[str, dict[str, Any]]:
    """The proposed rules by prefix, each checked to load as a rule."""
    rules = tomllib.loads(text.replace("[[systems.files.rules]]", "[[rules]]")).get("rules", [])
    for r in rules:
        Rule.model_validate(r)
    by_prefix = {r["prefix"]: r for r in rules}
    assert len(by_prefix) == len(rules), "one rule per prefix"
    return by_prefix


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
    assert "prefix customers/: 3 object(s) listed, 3 sampled, 3 holding emails, phones or " \
           "ids (3 emails, 3 phones)" in text
    assert "key(s) named after people" in text
    assert "prefix images/" in text and "nothing proposed" in text
    rules = proposed(text)
    assert sorted(rules) == ["customers/", "exports/", "logs/"]
    assert rules["customers/"]["key_template"] == "customers/{customer_id}/"
    assert rules["exports/"]["key_template"] == "exports/{email}.csv"


def test_shared_files_are_proposed_in_rows_mode_with_their_format(s3: S3Server) -> None:
    client = s3.client()
    bucket = make_bucket(client)
    customers = "customer_id,email,name\n" + "".join(
        f"{800000 + n},c{n}@example.org,Customer {n}\n" for n in range(200))
    client.put_object(Bucket=bucket, Key="exports/customers.csv", Body=customers.encode())
    events = "".join(json.dumps({"user_id": 5000 + n % 40, "event": "login"}) + "\n"
                     for n in range(400))
    client.put_object(Bucket=bucket, Key="logs/2026/12/events.jsonl.gz", Body=gz(events))
    # Keys whose suffix says nothing: auto would not read them.
    client.put_object(Bucket=bucket, Key="dumps/part-0000", Body="".join(
        json.dumps({"email": f"d{n}@example.org"}) + "\n" for n in range(30)).encode())
    client.put_object(Bucket=bucket, Key="notes/ticket-1",
                      Body=b"Call back ticket.person@example.org tomorrow.\n")
    # A JSON document of many people: no rule can edit it line by line.
    client.put_object(Bucket=bucket, Key="reports/all.json", Body=json.dumps(
        [{"email": f"r{n}@example.org"} for n in range(5)]).encode())
    for user in ("12345", "12346"):
        client.put_object(Bucket=bucket, Key=f"users/{user}/profile.json",
                          Body=json.dumps({"email": f"u{user}@example.org"}).encode())
    # Binary uploads linked to a person by a tag and by user metadata only.
    client.put_object(Bucket=bucket, Key="uploads/scan-1.pdf", Body=b"%PDF-\x00\x01\x02",
                      Tagging="customer=800123&team=crm", Metadata={"owner": "o@example.org"})

    text = s3.connector([{"bucket": bucket, "content": "none"}]).discover()
    rules = proposed(text)
    assert sorted(rules) == ["dumps/", "exports/", "logs/", "notes/", "uploads/", "users/"]
    assert (rules["exports/"]["mode"], rules["exports/"]["content"]) == ("rows", "csv")
    assert (rules["logs/"]["mode"], rules["logs/"]["content"]) == ("rows", "jsonl")
    assert (rules["dumps/"]["mode"], rules["dumps/"]["content"]) == ("rows", "jsonl")
    assert "up to 200 distinct emails, phones or ids" in text
    assert rules["notes/"].get("mode", "object") == "object"
    assert rules["notes/"]["content"] == "text", "a content mode that reads it"
    assert rules["users/"]["key_template"] == "users/{user_id}/"
    assert rules["uploads/"]["tags"] == {"customer": "customer_id"}
    assert rules["uploads/"]["metadata"] == {"owner": "email"}
    assert "not scanned: 1 sampled object(s)" in text
    assert "prefix reports/" in text and "not proposed, review by hand" in text
    assert rules["uploads/"]["content"] == "none", "nothing there is readable"
    for prefix in ("exports/", "logs/", "dumps/", "reports/"):
        assert rules.get(prefix, {}).get("mode", "rows") == "rows", \
            "a file holding many people is never proposed for whole-object deletion"
    for value in ("c7@example.org", "800123", "o@example.org", "ticket.person", "12345/"):
        assert value not in text


def test_discover_counts_phones_as_people_write_them(s3: S3Server) -> None:
    """A CSV whose phones are written with spaces (+44 113 000 0042) holds phones: not
    "0 phones" (only E.164 without spaces counted); national forms with a region."""
    client = s3.client()
    bucket = make_bucket(client)
    rows = "".join(f"{n},c{n}@example.org,+44 113 000 {n:04d}\n" for n in range(200))
    client.put_object(Bucket=bucket, Key="exports/customers.csv",
                      Body=("id,email,phone\n" + rows).encode())
    national = "".join(f"call 0113 000 {n:04d}\n" for n in range(5))
    client.put_object(Bucket=bucket, Key="notes/calls.txt", Body=national.encode())
    text = s3.connector([{"bucket": bucket, "content": "none"}]).discover()
    assert "(200 emails, 200 phones)" in text, text
    assert "+44 113" not in text and "0113" not in text
    assert "prefix notes/" not in text or "(0 emails, 0 phones)" in text  # no region
    gb = s3.connector([{"bucket": bucket, "content": "none"}], phone_region="GB").discover()
    assert "(0 emails, 5 phones)" in gb, gb
