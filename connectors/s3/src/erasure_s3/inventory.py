"""What a bucket holds: object versions and delete markers per key, and bucket facts
(region, versioning, object lock), read once per connector."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .client import client_error_code, s3_errors

__all__ = ["BucketFacts", "Buckets", "Version", "key_versions", "versions_of", "versions_under"]


@dataclass(frozen=True)
class Version:
    """One version of a key: data, or a delete marker (which holds no data)."""

    key: str
    version_id: str
    latest: bool
    marker: bool = False
    size: int = 0
    #: when the version was written (ISO 8601, UTC; "" where the listing gave none)
    last_modified: str = ""


@dataclass(frozen=True)
class BucketFacts:
    """Where a bucket is and how it keeps objects."""

    region: str
    object_lock: bool
    versioning: str = ""  # "", "Enabled" or "Suspended"
    allowed: bool = True


def versions_under(client: Any, bucket: str, prefix: str) -> Iterator[list[Version]]:
    """Every key under ``prefix`` with all its versions and delete markers, newest first,
    one listing pass (S3 lists a key's versions together, in key order)."""
    current: list[Version] = []
    for page in _pages(client, bucket, prefix):
        for v in _page_versions(page):
            if current and current[0].key != v.key:
                yield current
                current = []
            current.append(v)
    if current:
        yield current


def key_versions(client: Any, bucket: str, key: str) -> list[Version]:
    """The versions and delete markers of exactly ``key`` (a prefix listing, filtered:
    ``a.csv`` is a prefix of ``a.csv.bak``)."""
    return [v for page in _pages(client, bucket, key) for v in _page_versions(page)
            if v.key == key]


def versions_of(client: Any, bucket: str, keys: Iterable[str]) -> dict[str, list[Version]]:
    """The versions and markers of each of ``keys`` (absent keys map to ``[]``).

    Keys in one folder (``customers/800123/a``, ``.../b``) share one listing of the folder,
    so K versions there cost ceil(K/1000) pages, not one listing per key.
    """
    wanted = set(keys)
    out: dict[str, list[Version]] = {k: [] for k in wanted}
    folders: dict[str, list[str]] = {}
    for key in wanted:
        folders.setdefault(key[:key.rfind("/") + 1], []).append(key)
    for folder, members in folders.items():
        prefix = folder if len(members) > 1 else members[0]
        for page in _pages(client, bucket, prefix):
            for v in _page_versions(page):
                if v.key in wanted:
                    out[v.key].append(v)
    for versions in out.values():
        versions.sort(key=lambda v: not v.latest)
    return out


def _pages(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    paginator = client.get_paginator("list_object_versions")
    with s3_errors("list object versions"):
        yield from paginator.paginate(Bucket=bucket, Prefix=prefix)


def _page_versions(page: dict[str, Any]) -> list[Version]:
    out = [Version(v["Key"], v.get("VersionId") or "null", bool(v.get("IsLatest")), False,
                   int(v.get("Size", 0)), _iso(v.get("LastModified")))
           for v in page.get("Versions", [])]
    out += [Version(m["Key"], m.get("VersionId") or "null", bool(m.get("IsLatest")), True,
                    last_modified=_iso(m.get("LastModified")))
            for m in page.get("DeleteMarkers", [])]
    # Versions and markers come in two lists; a key's history is both, newest first.
    out.sort(key=lambda v: (v.key, not v.latest))
    return out


def _iso(when: Any) -> str:
    """A listing's LastModified (a datetime from botocore) as ISO 8601."""
    return when.isoformat() if hasattr(when, "isoformat") else str(when or "")


@dataclass
class Buckets:
    """Facts of the buckets a system uses, each read once."""

    client: Any
    allowed_regions: frozenset[str]
    _facts: dict[str, BucketFacts] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def facts(self, bucket: str) -> BucketFacts:
        with self._lock:
            known = self._facts.get(bucket)
        if known is not None:
            return known
        with s3_errors("get bucket location"):
            location = self.client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
        # No constraint is us-east-1; "EU" is the legacy name of eu-west-1.
        region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)
        with s3_errors("get bucket versioning"):
            versioning = self.client.get_bucket_versioning(Bucket=bucket).get("Status", "")
        facts = BucketFacts(region=str(region), object_lock=self._object_lock(bucket),
                            versioning=versioning, allowed=region in self.allowed_regions)
        with self._lock:
            self._facts[bucket] = facts
        return facts

    def _object_lock(self, bucket: str) -> bool:
        from botocore.exceptions import ClientError

        with s3_errors("get object lock configuration"):
            try:
                conf = self.client.get_object_lock_configuration(Bucket=bucket)
            except ClientError as exc:
                if client_error_code(exc) in ("ObjectLockConfigurationNotFoundError",
                                              "ObjectLockConfigurationNotFound"):
                    return False
                raise
        enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        return bool(enabled == "Enabled")
