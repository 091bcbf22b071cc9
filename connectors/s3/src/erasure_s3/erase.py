"""delete: whole objects with every version and delete marker, and rows of shared objects.

Whole objects: list the key's versions and markers, keep (RETAINED, naming it) what a legal
hold or a retention date protects, delete them all with DeleteObjects in chunks of at most
1,000 keys, read the per-key Errors of the 200 response, and list again to see that
nothing remains. Rows: write the object back without the rows, then delete every older
version that still holds one of them. Unfinished multipart uploads: aborted, then listed
again (uploads.py).
"""

from __future__ import annotations

import datetime as dt
import gzip
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from erasure import Finding, ItemOutcome, ItemStatus, PermanentError

from .client import _TRANSIENT_CODES, s3_errors
from .inventory import Buckets, Version, key_versions, versions_of
from .refs import Ref, row_hash
from .stream import decoded, lines_of
from .uploads import abort

__all__ = ["DELETE_CHUNK", "Eraser"]

#: DeleteObjects takes at most 1,000 keys per request.
DELETE_CHUNK = 1000
_SPOOL = 64 << 20  # a rewritten object stays in memory up to this size, then on disk


@dataclass
class _KeyPlan:
    """What erasing one key involves, and what went wrong."""

    bucket: str
    key: str
    delete: list[Version] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: what keeps the key as it is (a legal hold, a retention date): nothing of it changes
    held: list[str] = field(default_factory=list)
    transient: bool = False
    touched: set[str] = field(default_factory=set)  # row hashes held by a changed version
    #: rows mode: the latest version and the put_object arguments that replace it
    rewrite: tuple[Version, dict[str, Any]] | None = None


class Eraser:
    """Deletes what ``find`` pointed at, for one system."""

    def __init__(self, client: Any, buckets: Buckets, max_object_bytes: int,
                 delete_chunk: int = DELETE_CHUNK) -> None:
        self.client = client
        self.buckets = buckets
        self.max_object_bytes = max_object_bytes
        self.delete_chunk = min(delete_chunk, DELETE_CHUNK)  # S3 takes at most 1,000

    def delete(self, findings: Sequence[Finding]) -> list[ItemOutcome]:
        objects: dict[tuple[str, str], list[Finding]] = defaultdict(list)
        rows: dict[tuple[str, str], list[tuple[str, Finding]]] = defaultdict(list)
        out: list[ItemOutcome] = []
        uploads: list[tuple[Ref, Finding]] = []
        for f in findings:
            try:
                ref = Ref.parse(f.ref)
            except PermanentError:
                out.append(ItemOutcome(f, ItemStatus.FAILED, error="not an s3 reference"))
                continue
            if ref.upload is not None:
                uploads.append((ref, f))
            elif ref.row is None:
                objects[(ref.bucket, ref.key)].append(f)
            else:
                rows[(ref.bucket, ref.key)].append((ref.row, f))
        plans: list[_KeyPlan] = []
        done_already: set[tuple[str, str]] = set()
        for bucket in {b for b, _ in objects}:
            listed = versions_of(self.client, bucket, [k for b, k in objects if b == bucket])
            for key, versions in listed.items():
                if not versions:
                    done_already.add((bucket, key))
                plans.append(_KeyPlan(bucket, key, delete=versions))
        for (bucket, key), wanted in rows.items():
            plans.append(self._row_plan(bucket, key, {h for h, _ in wanted}))
        for plan in plans:
            self._check_holds(plan)
        self._execute([p for p in plans if not p.errors and not p.held])
        for plan in plans:
            for_key = objects.get((plan.bucket, plan.key))
            if for_key is not None:
                status = (ItemStatus.ALREADY_DONE if (plan.bucket, plan.key) in done_already
                          else ItemStatus.DONE)
                out.extend(_outcome(f, plan, status) for f in for_key)
            for rhash, f in rows.get((plan.bucket, plan.key), ()):
                status = ItemStatus.DONE if rhash in plan.touched else ItemStatus.ALREADY_DONE
                out.append(_outcome(f, plan, status))
        if uploads:
            out.extend(abort(self.client, uploads))
        return out

    # rows -----------------------------------------------------------------------------

    def _row_plan(self, bucket: str, key: str, remove: set[str]) -> _KeyPlan:
        """Which versions hold the rows; the latest is written back without them first."""
        versions = key_versions(self.client, bucket, key)
        plan = _KeyPlan(bucket, key)
        data = [v for v in versions if not v.marker]
        latest = versions[0] if versions and versions[0].latest and not versions[0].marker \
            else None
        for v in data:
            if v is latest:
                continue
            held = self._rows_in(bucket, v, remove)
            if held:
                plan.touched |= held
                plan.delete.append(v)
        if latest is not None:
            rewritten = self._without_rows(bucket, latest, remove)
            if rewritten is None:
                plan.errors.append("object too large to rewrite (max_object_bytes)")
            elif rewritten[1]:
                plan.touched |= rewritten[1]
                plan.rewrite = (latest, rewritten[0])
        return plan

    def _rows_in(self, bucket: str, version: Version, remove: set[str]) -> set[str]:
        with s3_errors("get object"):
            body = self.client.get_object(Bucket=bucket, Key=version.key,
                                          VersionId=version.version_id)["Body"]
            try:
                return {h for line in lines_of(decoded(body)) if (h := row_hash(line)) in remove}
            finally:
                body.close()

    def _without_rows(self, bucket: str, version: Version,
                      remove: set[str]) -> tuple[dict[str, Any], set[str]] | None:
        """The object's new body (every other line byte for byte) and what was dropped."""
        with s3_errors("get object"):
            resp = self.client.get_object(Bucket=bucket, Key=version.key,
                                          VersionId=version.version_id)
            body = resp["Body"]
            info: dict[str, Any] = {}
            spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - returned
            dropped: set[str] = set()
            size = 0
            try:
                chunks = decoded(body, info=info)
                first = next(chunks, b"")
                sink: Any = (gzip.GzipFile(fileobj=spool, mode="wb", mtime=0)
                             if info.get("gzip") else spool)
                for line in lines_of(_chain([first], chunks)):
                    size += len(line)
                    if size > self.max_object_bytes:
                        spool.close()
                        return None
                    h = row_hash(line)
                    if h in remove:
                        dropped.add(h)
                    else:
                        sink.write(line)
                if sink is not spool:
                    sink.close()
            finally:
                body.close()
        if not dropped:
            spool.close()
            return {}, dropped
        spool.seek(0)
        put: dict[str, Any] = {"Body": spool, "Metadata": resp.get("Metadata") or {}}
        for name in ("ContentType", "ContentEncoding", "ContentDisposition", "CacheControl",
                     "ServerSideEncryption", "SSEKMSKeyId", "StorageClass"):
            if resp.get(name):
                put[name] = resp[name]
        tags = self._tagging(bucket, version)
        if tags:
            put["Tagging"] = tags
        return put, dropped

    def _tagging(self, bucket: str, version: Version) -> str:
        from urllib.parse import urlencode

        with s3_errors("get object tagging"):
            tagset = self.client.get_object_tagging(Bucket=bucket, Key=version.key,
                                                    VersionId=version.version_id)["TagSet"]
        return urlencode([(t["Key"], t["Value"]) for t in tagset])

    # holds ----------------------------------------------------------------------------

    def _check_holds(self, plan: _KeyPlan) -> None:
        """A legal hold or an unexpired retention on any version keeps the whole item:
        nothing of it is changed, and the outcome is RETAINED naming the hold (``held``:
        the host asks again while the request is open, and it goes once released)."""
        if not self.buckets.facts(plan.bucket).object_lock:
            return
        rewrite = plan.rewrite
        versions = [v for v in plan.delete if not v.marker] + ([rewrite[0]] if rewrite else [])
        now = dt.datetime.now(dt.UTC)
        holds = 0
        retained: list[dt.datetime] = []
        for v in versions:
            with s3_errors("head object"):
                head = self.client.head_object(Bucket=plan.bucket, Key=v.key,
                                               VersionId=v.version_id)
            if head.get("ObjectLockLegalHoldStatus") == "ON":
                holds += 1
            until = head.get("ObjectLockRetainUntilDate")
            if until is not None and until > now:
                retained.append(until)
        if holds:
            plan.held.append(f"legal hold on {holds} version(s) until released")
        if retained:
            plan.held.append(f"object lock retention on {len(retained)} version(s) until "
                             f"{max(retained):%Y-%m-%d}")

    # deleting -------------------------------------------------------------------------

    def _execute(self, plans: Sequence[_KeyPlan]) -> None:
        for plan in plans:
            rewrite = plan.rewrite
            if rewrite is None:
                continue
            latest, put = rewrite
            with s3_errors("put object"):
                new = self.client.put_object(Bucket=plan.bucket, Key=plan.key, **put)
            put["Body"].close()
            if (new.get("VersionId") or "null") != latest.version_id:
                plan.delete.append(latest)  # versioned: the old latest still holds the rows
        by_bucket: dict[str, list[tuple[_KeyPlan, Version]]] = defaultdict(list)
        for plan in plans:
            by_bucket[plan.bucket].extend((plan, v) for v in plan.delete)
        for bucket, items in by_bucket.items():
            index = {(v.key, v.version_id): plan for plan, v in items}
            for start in range(0, len(items), self.delete_chunk):
                chunk = items[start:start + self.delete_chunk]
                objects = [{"Key": v.key, "VersionId": v.version_id} for _, v in chunk]
                with s3_errors("delete objects"):
                    resp = self.client.delete_objects(
                        Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                # A 200 may still hold per-key failures.
                for err in resp.get("Errors", []):
                    failed = index.get((err.get("Key"), err.get("VersionId") or "null"))
                    if failed is None:
                        continue
                    code = str(err.get("Code", "error"))
                    failed.errors.append(f"a version was not deleted: {code}")
                    failed.transient = failed.transient or code in _TRANSIENT_CODES
        self._verify([p for p in plans if not p.errors and p.delete])

    def _verify(self, plans: Sequence[_KeyPlan]) -> None:
        """List the keys again: none of the versions deleted may remain."""
        for bucket in {p.bucket for p in plans}:
            mine = [p for p in plans if p.bucket == bucket]
            listed = versions_of(self.client, bucket, [p.key for p in mine])
            for plan in mine:
                gone = {v.version_id for v in plan.delete}
                left = [v for v in listed[plan.key] if v.version_id in gone]
                if left:
                    plan.errors.append(f"{len(left)} version(s) remain after delete")
                    plan.transient = True


def _outcome(f: Finding, plan: _KeyPlan, status: ItemStatus) -> ItemOutcome:
    if plan.errors:
        return ItemOutcome(f, ItemStatus.FAILED, error="; ".join(sorted(set(plan.errors))),
                           transient=plan.transient)
    if plan.held:
        return ItemOutcome(f, ItemStatus.RETAINED, error="; ".join(plan.held), held=True)
    return ItemOutcome(f, status)


def _chain(*parts: Iterable[bytes]) -> Iterable[bytes]:
    for part in parts:
        yield from part
