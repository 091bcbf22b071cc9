"""A moto S3 server on 127.0.0.1, talked to by the real boto3, and helpers to fill it.

One ThreadedMotoServer per test session (a random free port, in a child process); each
test starts from an empty server (moto's reset API), so nothing one test leaves behind is
seen by another.
"""

from __future__ import annotations

import gzip
import itertools
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from erasure_s3 import S3Connector, S3Settings

REGION = "eu-central-1"
# Fake credentials for the fake server; distinctive, so the contract suite's repr check
# would see them if they leaked.
KEY_ID = "AKIAMOTOTESTING00001"
SECRET = "moto-secret-access-key-do-not-print"
_names = itertools.count(1)


@dataclass
class S3Server:
    """The running moto server and a plain boto3 client for test set-up and inspection."""

    url: str

    def client(self, **config: Any) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                          **config))

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def settings(self, rules: list[dict[str, Any]], **extra: Any) -> S3Settings:
        return S3Settings.model_validate({
            "rules": rules, "region": REGION, "endpoint_url": self.url,
            "access_key_id": KEY_ID, "secret_access_key": SECRET, **extra})

    def connector(self, rules: list[dict[str, Any]], **extra: Any) -> S3Connector:
        return S3Connector("files", self.settings(rules, **extra))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The server runs in a child process: moto handles each request in Python, and sharing
# this process's interpreter lock with boto3 would make every request wait for the test.
_SERVE = """
import logging, sys
import werkzeug.serving
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
werkzeug.serving.WSGIRequestHandler.protocol_version = "HTTP/1.1"  # keep connections open
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the test session closes our stdin
server.stop()
"""


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    """The server, emptied."""
    s3_server.reset()
    return s3_server


def make_bucket(client: Any, *, region: str = REGION, versioned: bool = False,
                lock: bool = False, name: str | None = None) -> str:
    """A new bucket; object lock implies versioning."""
    bucket = name or f"bucket-{next(_names)}"
    args: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        args["CreateBucketConfiguration"] = {"LocationConstraint": region}
    if lock:
        args["ObjectLockEnabledForBucket"] = True
    creator = client
    if region != client.meta.region_name:  # S3 creates a bucket through its region
        creator = boto3.client("s3", endpoint_url=client.meta.endpoint_url, region_name=region,
                               aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                               config=Config(s3={"addressing_style": "path"}))
    creator.create_bucket(**args)
    if versioned and not lock:
        client.put_bucket_versioning(Bucket=bucket,
                                     VersioningConfiguration={"Status": "Enabled"})
    return bucket


def gz(text: str) -> bytes:
    """Deterministic gzip bytes of ``text``."""
    return gzip.compress(text.encode(), mtime=0)


def all_versions(client: Any, bucket: str, prefix: str = "") -> list[tuple[str, str, bool]]:
    """(key, version id, is a delete marker) of everything the bucket still holds."""
    out = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                      Prefix=prefix):
        out += [(v["Key"], v["VersionId"], False) for v in page.get("Versions", [])]
        out += [(m["Key"], m["VersionId"], True) for m in page.get("DeleteMarkers", [])]
    return out


def body_of(client: Any, bucket: str, key: str, version_id: str | None = None) -> bytes:
    args = {"Bucket": bucket, "Key": key} | ({"VersionId": version_id} if version_id else {})
    data: bytes = client.get_object(**args)["Body"].read()
    return gzip.decompress(data) if data.startswith(b"\x1f\x8b") else data
