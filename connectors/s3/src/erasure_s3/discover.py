"""Propose rules from what the buckets hold: per prefix, sampled objects holding emails or
phones. Sampled content is only counted; no value, and no key that looks like one, is ever
printed, logged or put in the proposal."""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from typing import Any

from .client import s3_errors
from .inventory import Buckets
from .settings import S3Settings
from .stream import content_format

__all__ = ["discover"]

SAMPLE_OBJECTS = 5  # per prefix
SAMPLE_BYTES = 64 * 1024  # read from the start of each sampled object
LISTED_KEYS = 1000  # per bucket
_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(rb"(?<![\w+])\+[1-9][0-9]{6,14}(?!\d)")
_PERSONAL_KEY = re.compile(r"@|\+?\d{7,}")
_ID_SEGMENT = re.compile(r"^[0-9]{3,}$|^[0-9a-f-]{32,36}$")


def discover(client: Any, settings: S3Settings, buckets: Buckets, system: str) -> str:
    """A TOML proposal of ``[[systems.<system>.rules]]`` with counts as comments."""
    lines = [f"# Proposed rules for system {system}: review before use.",
             "# Counts come from sampled objects; no value is shown."]
    for bucket in sorted({r.bucket for r in settings.rules}):
        facts = buckets.facts(bucket)
        where = "allowed" if facts.allowed else "OUTSIDE the allowed regions"
        lines.append(f"\n# bucket {bucket}: region {facts.region} ({where}), "
                     f"versioning {facts.versioning or 'off'}, "
                     f"object lock {'on' if facts.object_lock else 'off'}")
        for prefix, stats in sorted(_sample_bucket(client, bucket).items()):
            lines.extend(_proposal(system, bucket, prefix, stats))
    return "\n".join(lines) + "\n"


def _sample_bucket(client: Any, bucket: str) -> dict[str, Counter[str]]:
    with s3_errors("list objects"):
        listed = client.list_objects_v2(Bucket=bucket, MaxKeys=LISTED_KEYS).get("Contents", [])
    by_prefix: dict[str, list[str]] = {}
    stats: dict[str, Counter[str]] = {}
    for obj in listed:
        key = obj["Key"]
        parts = key.split("/")
        prefix = parts[0] + "/" if len(parts) > 1 else ""
        if _PERSONAL_KEY.search(prefix):
            prefix = "(a prefix that looks like personal data)/"
        c = stats.setdefault(prefix, Counter())
        c["objects"] += 1
        if _PERSONAL_KEY.search(key.rpartition("/")[2]):
            c["keys_named_after_people"] += 1
        if len(parts) > 2 and _ID_SEGMENT.match(parts[1]):
            c["id_segments"] += 1
        by_prefix.setdefault(prefix, []).append(key)
    for prefix, keys in by_prefix.items():
        for key in keys[:SAMPLE_OBJECTS]:
            sample = _head(client, bucket, key)
            c = stats[prefix]
            c["sampled"] += 1
            emails, phones = len(_EMAIL.findall(sample)), len(_PHONE.findall(sample))
            c["emails"] += emails
            c["phones"] += phones
            c["objects_with_data"] += bool(emails or phones)
            fmt = content_format(key, None, "auto")
            if fmt:
                c[f"format:{fmt}"] += 1
    return stats


def _head(client: Any, bucket: str, key: str) -> bytes:
    with s3_errors("get object"):
        body = client.get_object(Bucket=bucket, Key=key,
                                 Range=f"bytes=0-{SAMPLE_BYTES - 1}")["Body"]
        try:
            data = body.read()
        finally:
            body.close()
    if data.startswith(b"\x1f\x8b"):
        try:
            data = zlib.decompressobj(wbits=47).decompress(data, 4 * SAMPLE_BYTES)
        except zlib.error:
            return b""
    return data


def _proposal(system: str, bucket: str, prefix: str, c: Counter[str]) -> list[str]:
    head = (f"# prefix {prefix or '(root)'}: {c['objects']} object(s) listed, {c['sampled']} "
            f"sampled, {c['objects_with_data']} holding emails or phones "
            f"({c['emails']} emails, {c['phones']} phones)")
    if c["keys_named_after_people"]:
        head += f"; {c['keys_named_after_people']} key(s) named after people"
    if not (c["objects_with_data"] or c["keys_named_after_people"] or c["id_segments"]):
        return [head + ": nothing proposed"]
    if prefix.startswith("("):
        return [head + ": keys hold personal data; choose a prefix by hand"]
    out = [head, f"[[systems.{system}.rules]]", f"bucket = {json.dumps(bucket)}",
           f"prefix = {json.dumps(prefix)}", 'content = "auto"']
    if c["id_segments"]:
        out.append(f"# key_template = {json.dumps(prefix + '{customer_id}/')}  "
                   f"# {c['id_segments']} key(s) have an id-like second segment")
    return out
