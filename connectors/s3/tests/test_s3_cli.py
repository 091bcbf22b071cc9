"""The s3 connector driven by the real command line against the moto server, with S3
answering 503 SlowDown to the first requests of every operation (botocore event hooks in
the CLI process): the erasure still ends completed, nothing of the subject is left in any
version, and nobody else's data changed."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from s3_fixtures import KEY_ID, SECRET, S3Server, all_versions, body_of, make_bucket

# Loaded by the CLI process (PYTHONPATH): every new botocore session gets a hook that
# answers the first FAULTS requests of each S3 operation with 503 SlowDown.
SITECUSTOMIZE = '''
import os
import botocore.handlers
from botocore.awsrequest import AWSResponse

FAULTS = int(os.environ["S3_FAULTS"])
LOG = os.environ["S3_FAULT_LOG"]
seen = {}


class _Raw:
    def stream(self, **_):
        yield b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"


def slow_down(event_name, **_):
    op = event_name.rsplit(".", 1)[-1]
    seen[op] = seen.get(op, 0) + 1
    if seen[op] <= FAULTS:
        with open(LOG, "a") as fh:
            fh.write(op + "\\n")
        return AWSResponse("http://fault", 503, {"Content-Type": "application/xml"}, _Raw())


botocore.handlers.BUILTIN_HANDLERS.append(("before-send.s3", slow_down))
'''
CSV = ("customer_id,email,phone\n800123,bob@example.org,+4930123456\n"
       "8001234,jimbob@example.org,+49301234567\n800321,alice@example.org,+4930123456\n"
       "800456,carol@example.org,+4930555111\n")


def cli(*args: str, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=180, env=env)


def test_erasure_through_the_cli_completes_despite_slowdown(s3: S3Server,
                                                           tmp_path: Path) -> None:
    client = s3.client()
    bucket = make_bucket(client, versioned=True)
    for n in range(3):
        client.put_object(Bucket=bucket, Key="customers/800123/profile.json",
                          Body=json.dumps({"email": "bob@example.org", "rev": n}).encode())
    client.delete_object(Bucket=bucket, Key="customers/800123/profile.json")
    client.put_object(Bucket=bucket, Key="customers/8001234/profile.json",
                      Body=b'{"email": "jimbob@example.org"}')
    client.put_object(Bucket=bucket, Key="exports/customers.csv", Body=CSV.encode())
    neighbours = sorted(all_versions(client, bucket, "customers/8001234/"))

    rules: list[dict[str, Any]] = [
        {"bucket": bucket, "prefix": "customers/", "key_template": "customers/{customer_id}/"},
        {"bucket": bucket, "prefix": "exports/", "mode": "rows"},
    ]
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\n\n[erasure.retry]\ninitial_wait = 0.01\n'
        "max_wait = 0.05\nmax_attempts = 8\n\n"
        f'[systems.files]\nconnector = "s3"\nendpoint_url = "{s3.url}"\n'
        'access_key_id = { env = "S3_KEY_ID" }\nsecret_access_key = { env = "S3_SECRET" }\n'
        f"sdk_max_attempts = 1\nrules = {_toml(rules)}\n\n"
        '[id_spaces.customer]\ntype = "customer_id"\nsystems = ["files"]\n', encoding="utf-8")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    log = tmp_path / "faults.log"
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(S3_KEY_ID=KEY_ID, S3_SECRET=SECRET, COLUMNS="250", NO_COLOR="1",
               PYTHONPATH=str(site), S3_FAULTS="2", S3_FAULT_LOG=str(log))

    run = cli("erase", "--email", "bob@example.org", "--customer-id", "800123", "--verified",
              config=config, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 completed" in run.stderr
    faults = log.read_text().split()
    assert {"ListObjectVersions", "DeleteObjects", "PutObject"} <= set(faults)

    # Nothing of Bob in any version; every other row byte for byte; neighbours untouched.
    assert all_versions(client, bucket, "customers/800123/") == []
    assert sorted(all_versions(client, bucket, "customers/8001234/")) == neighbours
    assert len(all_versions(client, bucket, "exports/")) == 1
    assert body_of(client, bucket, "exports/customers.csv") == CSV.replace(
        "800123,bob@example.org,+4930123456\n", "").encode()

    env.update(S3_FAULTS="0")
    with ThreadPoolExecutor(2) as pool:  # independent: run them side by side
        verifying = pool.submit(cli, "receipts", "verify", config=config, env=env)
        check = cli("systems", "check", config=config, env=env)
        verified = verifying.result()
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert check.returncode == 0, check.stdout + check.stderr
    for out in (run, verified, check):
        assert "bob@example.org" not in out.stdout + out.stderr

    # A second system on a bucket in the US: `systems check` names it and fails.
    us = make_bucket(client, region="us-west-2")
    text = config.read_text(encoding="utf-8").replace("[id_spaces.customer]", (
        f'[systems.archive]\nconnector = "s3"\nendpoint_url = "{s3.url}"\n'
        'access_key_id = { env = "S3_KEY_ID" }\nsecret_access_key = { env = "S3_SECRET" }\n'
        f"rules = {_toml([{'bucket': us}])}\n\n[id_spaces.customer]"))
    config.write_text(text, encoding="utf-8")
    check = cli("systems", "check", config=config, env=env)
    assert check.returncode == 1
    assert f"bucket {us} is in us-west-2, outside the allowed regions" in check.stdout
    assert "files: ok" in check.stdout

    # What a request finds there is flagged on its receipt, by kind (no key, no value).
    client.put_object(Bucket=us, Key="exports/carol.json",
                      Body=b'{"email": "carol@example.org"}\n')
    found = cli("find", "--email", "carol@example.org", config=config, env=env)
    assert found.returncode == 0, found.stdout + found.stderr
    ledger = sqlite3.connect(config.parent / "state" / "ledger.db")
    (body,) = [json.loads(b) for (b,) in ledger.execute(
        "SELECT body FROM receipts WHERE system = 'archive' ORDER BY seq DESC LIMIT 1")]
    ledger.close()
    assert body["kinds"] == {"object-outside-residency": 1}
    assert "carol" not in json.dumps(body)


def _toml(value: Any) -> str:
    """Inline TOML for the rules (strings as JSON strings are valid TOML basic strings)."""
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)
