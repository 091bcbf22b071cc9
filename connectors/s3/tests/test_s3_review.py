"""`erasure review` of a phone-only match in a shared S3 log (issue 26: "a phone-only match
in an S3 log line, reported as review, could not be located at all"), through the real
command line against the moto server: the review item names the object (`s3://bucket/key`)
and a prefix of the SHA-256 of the line, which locates exactly that line; including it
erases that line and nothing else."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from s3_fixtures import KEY_ID, SECRET, S3Server, body_of, make_bucket

PHONE = "+4930123456"
LINES = [
    '{"event": "signup", "email": "alice@example.org", "phone": "+4930123456"}\n',
    '{"event": "call", "note": "rang +49 30 123456 about the parcel"}\n',  # Alice? weak
    '{"event": "call", "note": "Carol: +49 30 555111"}\n',
]


def cli(*args: str, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=180, env=env)


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def test_review_locates_a_phone_only_line_of_a_shared_log(s3: S3Server,
                                                          tmp_path: Path) -> None:
    client = s3.client()
    bucket = make_bucket(client)
    client.put_object(Bucket=bucket, Key="logs/calls.jsonl", Body="".join(LINES).encode())
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\nrequire_approval = true\n\n'
        f'[systems.files]\nconnector = "s3"\nendpoint_url = "{s3.url}"\n'
        'access_key_id = { env = "S3_KEY_ID" }\nsecret_access_key = { env = "S3_SECRET" }\n'
        f'rules = [{{ bucket = "{bucket}", prefix = "logs/", mode = "rows" }}]\n',
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(S3_KEY_ID=KEY_ID, S3_SECRET=SECRET, COLUMNS="250", NO_COLOR="1",
               ERASURE_BLOCK_PLUGINS="sql,mail,notify,salesforce,zendesk")

    erase = cli("erase", "--email", "alice@example.org", "--phone", PHONE, "--verified",
                config=config, env=env)
    assert erase.returncode == 0 and "awaiting approval" in erase.stdout, describe(erase)
    rid = "r-" + erase.stdout.split("r-", 1)[1][:16]

    with ThreadPoolExecutor(2) as pool:  # independent: side by side
        as_json = pool.submit(cli, "review", rid, "--json", config=config, env=env)
        shown = cli("review", rid, config=config, env=env)
        doc = json.loads(as_json.result().stdout)
    assert shown.returncode == 0, describe(shown)
    assert "1 review item(s), 1 undecided" in shown.stdout, describe(shown)
    assert "files:1" in shown.stdout and "a phone only" in shown.stdout, describe(shown)
    (where,) = [ln.strip() for ln in shown.stdout.splitlines() if "where:" in ln]
    prefix = f"where: s3://{bucket}/logs/calls.jsonl, the line whose SHA-256 (without its " \
             "line end) starts "
    assert where.startswith(prefix), where
    start = where.removeprefix(prefix)
    # the operator finds the line from what review printed, and it is the weak one
    hits = [line for line in LINES
            if hashlib.sha256(line.rstrip("\n").encode()).hexdigest().startswith(start)]
    assert hits == [LINES[1]], (start, where)

    (item,) = doc["items"]
    assert item["location"] == where.removeprefix("where: ")
    assert item["matched"] == [{"type": "phone", "value": PHONE, "provenance": "given"}]

    decided = cli("review", rid, "--include", "files:1", "--by", "OPS-7", config=config,
                  env=env)
    assert decided.returncode == 0, describe(decided)
    approved = cli("approve", rid, config=config, env=env)
    assert approved.returncode == 0, describe(approved)
    ran = cli("run", config=config, env=env)
    assert ran.returncode == 0, describe(ran)
    # Alice's signup line and the included call went; Carol's line is byte for byte there
    assert body_of(client, bucket, "logs/calls.jsonl") == LINES[2].encode()
    for proc in (erase, approved, ran):
        assert PHONE not in proc.stdout + proc.stderr
