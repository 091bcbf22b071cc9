"""restrict: a legal hold on every version where the bucket has object lock, else a tag.

A legal hold is the natural restriction of S3: it keeps every version from deletion until
it is lifted. Where a bucket has no object lock, the configured tag marks each version, for
the processes that read the bucket to respect.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from erasure import Finding, ItemOutcome, ItemStatus, PermanentError

from .client import s3_errors
from .inventory import Buckets, Version, key_versions
from .refs import Ref
from .settings import S3Settings

__all__ = ["Restrictor"]


class Restrictor:
    """Marks found objects restricted, idempotently."""

    def __init__(self, client: Any, buckets: Buckets, settings: S3Settings) -> None:
        self.client = client
        self.buckets = buckets
        self.settings = settings

    def restrict(self, findings: Sequence[Finding]) -> list[ItemOutcome]:
        by_key: dict[tuple[str, str], list[Finding]] = defaultdict(list)
        out: list[ItemOutcome] = []
        for f in findings:
            try:
                ref = Ref.parse(f.ref)
            except PermanentError:
                out.append(ItemOutcome(f, ItemStatus.FAILED, error="not an s3 reference"))
                continue
            if ref.upload is not None:
                # Neither a legal hold nor a tag can be put on an upload; erasure aborts it.
                out.append(ItemOutcome(f, ItemStatus.NOT_SUPPORTED, error=(
                    "an unfinished multipart upload cannot be held or tagged")))
                continue
            # A row is restricted with its whole object: S3 marks objects, not lines.
            by_key[(ref.bucket, ref.key)].append(f)
        for (bucket, key), group in by_key.items():
            status, error = self._key(bucket, key)
            out.extend(ItemOutcome(f, status, error=error) for f in group)
        return out

    def uses_legal_hold(self, bucket: str) -> bool:
        """Whether restrict marks objects of ``bucket`` with a legal hold (else a tag)."""
        how = self.settings.restrict_with
        return how == "legal_hold" or (how == "auto" and self.buckets.facts(bucket).object_lock)

    def _key(self, bucket: str, key: str) -> tuple[ItemStatus, str | None]:
        data = [v for v in key_versions(self.client, bucket, key) if not v.marker]
        if not data:
            return ItemStatus.FAILED, "object not found"
        if self.uses_legal_hold(bucket):
            if not self.buckets.facts(bucket).object_lock:
                return ItemStatus.FAILED, "bucket has no object lock (restrict_with)"
            changed = sum(self._hold(bucket, v) for v in data)
        else:
            changed = sum(self._tag(bucket, v) for v in data)
        return (ItemStatus.DONE if changed else ItemStatus.ALREADY_DONE), None

    def _hold(self, bucket: str, v: Version) -> bool:
        with s3_errors("head object"):
            head = self.client.head_object(Bucket=bucket, Key=v.key, VersionId=v.version_id)
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            return False
        with s3_errors("put object legal hold"):
            self.client.put_object_legal_hold(Bucket=bucket, Key=v.key, VersionId=v.version_id,
                                              LegalHold={"Status": "ON"})
        return True

    def _tag(self, bucket: str, v: Version) -> bool:
        name = self.settings.restrict_tag
        with s3_errors("get object tagging"):
            tags = self.client.get_object_tagging(Bucket=bucket, Key=v.key,
                                                  VersionId=v.version_id)["TagSet"]
        if any(t["Key"] == name for t in tags):
            return False
        with s3_errors("put object tagging"):
            self.client.put_object_tagging(
                Bucket=bucket, Key=v.key, VersionId=v.version_id,
                Tagging={"TagSet": [*tags, {"Key": name, "Value": "true"}]})
        return True
