"""export: the subject's objects (content parsed where it is text), or only their rows."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from erasure import Finding, Record

from .client import s3_errors
from .inventory import Version, key_versions
from .matching import csv_header
from .refs import Ref, row_hash
from .settings import S3Settings
from .stream import content_format, decoded, lines_of, read_all

__all__ = ["Exporter"]

_BINARY_MAX = 10 << 20  # binary objects up to this size are exported as base64


class Exporter:
    """Reads found items back as JSON-safe records."""

    def __init__(self, client: Any, settings: S3Settings) -> None:
        self.client = client
        self.settings = settings

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        objects: dict[tuple[str, str], list[Finding]] = defaultdict(list)
        rows: dict[tuple[str, str], list[tuple[str, Finding]]] = defaultdict(list)
        for f in findings:
            ref = Ref.parse(f.ref)
            if ref.row is None:
                objects[(ref.bucket, ref.key)].append(f)
            else:
                rows[(ref.bucket, ref.key)].append((ref.row, f))
        out: list[Record] = []
        for (bucket, key), group in objects.items():
            data = self._object(bucket, key)
            if data is not None:
                out.extend(Record(f, data) for f in group)
        for (bucket, key), wanted in rows.items():
            found = self._rows(bucket, key, {h for h, _ in wanted})
            out.extend(Record(f, found[h]) for h, f in wanted if h in found)
        return iter(out)

    def _rule_content(self, bucket: str, key: str) -> str:
        for rule in self.settings.rules:
            if rule.bucket == bucket and key.startswith(rule.prefix):
                return rule.content
        return "auto"

    def _object(self, bucket: str, key: str) -> dict[str, Any] | None:
        versions = key_versions(self.client, bucket, key)
        data = [v for v in versions if not v.marker]
        if not data:
            return None
        latest = data[0]
        with s3_errors("get object"):
            resp = self.client.get_object(Bucket=bucket, Key=key, VersionId=latest.version_id)
            body = resp["Body"]
            try:
                raw = read_all(body, self.settings.max_object_bytes)
            finally:
                body.close()
            tags = self.client.get_object_tagging(Bucket=bucket, Key=key,
                                                  VersionId=latest.version_id)["TagSet"]
        record: dict[str, Any] = {
            "bucket": bucket, "key": key, "version_id": latest.version_id,
            "versions": len(data), "size": latest.size,
            "content_type": resp.get("ContentType"),
            "last_modified": str(resp.get("LastModified")),
            "metadata": dict(resp.get("Metadata") or {}),
            "tags": {t["Key"]: t["Value"] for t in tags},
        }
        fmt = content_format(key, resp.get("ContentType"), self._rule_content(bucket, key))
        if raw is None:
            record["content_note"] = "larger than max_object_bytes: not exported"
        elif fmt is None:
            if len(raw) <= _BINARY_MAX:
                record["content_base64"] = base64.b64encode(raw).decode()
            else:
                record["content_note"] = "binary content too large to export"
        else:
            record["content"] = _parse(raw.decode("utf-8", "replace"), fmt)
        return record

    def _rows(self, bucket: str, key: str, wanted: set[str]) -> dict[str, dict[str, Any]]:
        """The wanted rows, parsed, from the newest version holding each."""
        fmt = content_format(key, None, self._rule_content(bucket, key)) or "text"
        found: dict[str, dict[str, Any]] = {}
        for v in (v for v in key_versions(self.client, bucket, key) if not v.marker):
            found.update({h: r for h, r in self._version_rows(bucket, v, fmt, wanted).items()
                          if h not in found})
            if len(found) == len(wanted):
                break
        return found

    def _version_rows(self, bucket: str, v: Version, fmt: str,
                      wanted: set[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        header: list[str] | None = None
        with s3_errors("get object"):
            body = self.client.get_object(Bucket=bucket, Key=v.key,
                                          VersionId=v.version_id)["Body"]
            try:
                for line in lines_of(decoded(body)):
                    text = line.decode("utf-8", "replace").rstrip("\r\n")
                    if header is None and fmt == "csv":
                        header = csv_header(text)
                        continue
                    h = row_hash(line)
                    if h in wanted:
                        out[h] = {"bucket": bucket, "key": v.key, "version_id": v.version_id,
                                  "row": _parse_line(text, fmt, header)}
            finally:
                body.close()
        return out


def _parse(text: str, fmt: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    if fmt == "csv":
        return [dict(r) for r in csv.DictReader(io.StringIO(text))]
    lines = text.splitlines()
    if fmt == "jsonl":
        return [_parse_line(line, fmt, None) for line in lines if line.strip()]
    return lines


def _parse_line(text: str, fmt: str, header: list[str] | None) -> Any:
    if fmt == "jsonl":
        try:
            return json.loads(text)
        except ValueError:
            return text
    if fmt == "csv" and header is not None:
        return dict(zip(header, next(csv.reader([text]), []), strict=False))
    return text
