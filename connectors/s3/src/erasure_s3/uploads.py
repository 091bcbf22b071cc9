"""Unfinished multipart uploads: listed, exported as metadata, aborted, reported when stale.

An upload that was started and never completed or aborted keeps its parts (the bytes of
the object being written) in the bucket, invisible to ListObjectVersions, until someone
aborts it (or a lifecycle rule does). Its key is known (``ListMultipartUploads``); its
parts cannot be downloaded (S3 has no call that reads a part back), so an access package
holds what can be known of it: key, upload id, when it was started, its parts' numbers and
sizes. An erasure aborts it (``AbortMultipartUpload``, which deletes the parts) and lists
again to see that it is gone.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from erasure import Finding, ItemOutcome, ItemStatus

from .client import client_error_code, s3_errors
from .refs import Ref

__all__ = ["NOT_DOWNLOADABLE", "Upload", "abort", "describe", "stale", "uploads_under"]

#: said in every exported upload's record: what the package cannot hold, and why
NOT_DOWNLOADABLE = ("an unfinished multipart upload: S3 has no call that reads its parts "
                    "back, so their content is not in this package (their numbers and sizes "
                    "are); the upload is aborted, and its parts deleted, on erasure")


@dataclass(frozen=True)
class Upload:
    """One unfinished multipart upload."""

    key: str
    upload_id: str
    initiated: dt.datetime | None
    storage_class: str = ""


def uploads_under(client: Any, bucket: str, prefix: str) -> Iterator[Upload]:
    """Every unfinished multipart upload under ``prefix``, all pages."""
    paginator = client.get_paginator("list_multipart_uploads")
    with s3_errors("list multipart uploads"):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for u in page.get("Uploads", []) or []:
                yield Upload(u["Key"], u["UploadId"], u.get("Initiated"),
                             str(u.get("StorageClass") or ""))


def describe(client: Any, bucket: str, ref: Ref) -> dict[str, Any] | None:
    """What an access package holds of an upload (None: it is gone)."""
    upload = next((u for u in uploads_under(client, bucket, ref.key)
                   if u.key == ref.key and u.upload_id == ref.upload), None)
    if upload is None:
        return None
    parts: list[dict[str, Any]] = []
    paginator = client.get_paginator("list_parts")
    with s3_errors("list parts"):
        for page in paginator.paginate(Bucket=bucket, Key=ref.key, UploadId=upload.upload_id):
            parts += [{"part": p["PartNumber"], "size": int(p.get("Size", 0)),
                       "last_modified": _iso(p.get("LastModified"))}
                      for p in page.get("Parts", []) or []]
    return {"bucket": bucket, "key": ref.key, "upload_id": upload.upload_id,
            "initiated": _iso(upload.initiated), "storage_class": upload.storage_class,
            "parts": parts, "size": sum(p["size"] for p in parts),
            "content_note": NOT_DOWNLOADABLE}


def abort(client: Any, findings: Sequence[tuple[Ref, Finding]]) -> list[ItemOutcome]:
    """Abort each upload, then list the keys again: an upload still listed fails its item
    (transient: S3 may still be finishing a part that was being written)."""
    from botocore.exceptions import ClientError

    status: dict[tuple[str, str, str], ItemStatus] = {}
    errors: dict[tuple[str, str, str], str] = {}
    for ref, _ in findings:
        ident = (ref.bucket, ref.key, ref.upload or "")
        if ident in status:
            continue
        with s3_errors("abort multipart upload"):
            try:
                client.abort_multipart_upload(Bucket=ref.bucket, Key=ref.key,
                                              UploadId=ref.upload)
                status[ident] = ItemStatus.DONE
            except ClientError as exc:
                if client_error_code(exc) != "NoSuchUpload":
                    raise
                status[ident] = ItemStatus.ALREADY_DONE
    by_bucket: dict[str, set[str]] = defaultdict(set)
    for bucket, key, _ in status:
        by_bucket[bucket].add(key)
    for bucket, keys in by_bucket.items():
        left = {(bucket, u.key, u.upload_id) for key in keys
                for u in uploads_under(client, bucket, key) if u.key == key}
        for ident in left & set(status):
            errors[ident] = "the multipart upload is still listed after it was aborted"
    out = []
    for ref, f in findings:
        ident = (ref.bucket, ref.key, ref.upload or "")
        if ident in errors:
            out.append(ItemOutcome(f, ItemStatus.FAILED, error=errors[ident], transient=True))
        else:
            out.append(ItemOutcome(f, status[ident]))
    return out


def stale(client: Any, places: Iterable[tuple[str, str]], days: float,
          now: dt.datetime | None = None) -> list[str]:
    """One line per bucket holding uploads started more than ``days`` ago under the given
    (bucket, prefix) places: how many and since when; never a key."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=days)
    old: dict[str, dict[str, dt.datetime]] = defaultdict(dict)
    for bucket, prefix in sorted(set(places)):
        for u in uploads_under(client, bucket, prefix):
            if u.initiated is not None and u.initiated <= cutoff:
                old[bucket][u.upload_id] = u.initiated
    return [f"bucket {bucket}: {len(ups)} unfinished multipart upload(s) started more than "
            f"{days:g} day(s) ago (the oldest {min(ups.values()):%Y-%m-%d}); their parts hold "
            "data until aborted: an erasure aborts a person's, the rest need "
            "AbortMultipartUpload or a lifecycle rule (AbortIncompleteMultipartUpload)"
            for bucket, ups in sorted(old.items())]


def _iso(when: Any) -> str | None:
    return when.isoformat() if hasattr(when, "isoformat") else None
