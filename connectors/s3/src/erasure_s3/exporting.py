"""export: the subject's objects, every version that holds the subject's data (content
parsed where it is text), or only their rows, with every version each row is in."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from erasure import Finding, Record, Subject

from .client import s3_errors
from .inventory import Version, key_versions
from .locate import scan_version
from .matching import Matcher, csv_header
from .refs import Ref, row_hash
from .settings import Rule, S3Settings
from .stream import content_format, decoded, lines_of, read_all
from .uploads import describe

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
        out: list[Record] = []
        for f in findings:
            ref = Ref.parse(f.ref)
            if ref.upload is not None:
                upload = describe(self.client, ref.bucket, ref)
                if upload is not None:
                    out.append(Record(f, upload))
            elif ref.row is None:
                objects[(ref.bucket, ref.key)].append(f)
            else:
                rows[(ref.bucket, ref.key)].append((ref.row, f))
        for (bucket, key), group in objects.items():
            out.extend(self._object(bucket, key, group))
        for (bucket, key), wanted in rows.items():
            found = self._rows(bucket, key, {h for h, _ in wanted})
            out.extend(Record(f, found[h]) for h, f in wanted if h in found)
        return iter(out)

    def _rule(self, bucket: str, key: str) -> Rule | None:
        for rule in self.settings.rules:
            if rule.bucket == bucket and key.startswith(rule.prefix):
                return rule
        return None

    def _rule_content(self, bucket: str, key: str) -> str:
        rule = self._rule(bucket, key)
        return rule.content if rule is not None else "auto"

    def _object(self, bucket: str, key: str, group: list[Finding]) -> list[Record]:
        """A record per version of the object that holds the finding's subject's data,
        newest first, each marked with its version id and date: an older version (an
        old address) is the person's data too, and goes when the object is erased."""
        data = [v for v in key_versions(self.client, bucket, key) if not v.marker]
        if not data:
            return []
        records = {v.version_id: self._version(bucket, key, v) for v in data}
        held = self._holders(bucket, key, data, group)
        return [Record(f, records[v.version_id]) for f in group for v in data
                if v.version_id in held.get(f.subject, records)]

    def _holders(self, bucket: str, key: str, data: list[Version],
                 group: list[Finding]) -> dict[str, set[str]]:
        """Per subject whose finding matched by content alone: the versions whose content
        holds one of its identifiers (a key, tag or metadata match owns every version)."""
        by_content = [f for f in group if f.fields and all(
            x.startswith(("content:", "region:")) for x in f.fields)]
        rule = self._rule(bucket, key)
        fmt = content_format(key, None, rule.content) if rule is not None else None
        if not by_content or rule is None or fmt is None:
            return {}
        subjects = [Subject(f.subject, f.matched) for f in by_content]
        region = self.settings.phone_region
        matcher = Matcher(subjects, rule.fields, region=region)
        text = Matcher(subjects, {}, structured=False, region=region)
        out: dict[str, set[str]] = {f.subject: set() for f in by_content}
        for v in data:
            found = scan_version(self.client, bucket, v, fmt, matcher, text,
                                 self.settings.max_object_bytes).found
            for f in by_content:
                if found & set(f.matched):
                    out[f.subject].add(v.version_id)
        return out

    def _version(self, bucket: str, key: str, v: Version) -> dict[str, Any]:
        with s3_errors("get object"):
            resp = self.client.get_object(Bucket=bucket, Key=key, VersionId=v.version_id)
            body = resp["Body"]
            try:
                raw = read_all(body, self.settings.max_object_bytes)
            finally:
                body.close()
            tags = self.client.get_object_tagging(Bucket=bucket, Key=key,
                                                  VersionId=v.version_id)["TagSet"]
        record: dict[str, Any] = {
            "bucket": bucket, "key": key, "version_id": v.version_id,
            "last_modified": v.last_modified or str(resp.get("LastModified")),
            "latest": v.latest, "size": v.size,
            "content_type": resp.get("ContentType"),
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
        """The wanted rows, parsed, from the newest version holding each, with every
        version (id and date) that holds the same line."""
        fmt = content_format(key, None, self._rule_content(bucket, key)) or "text"
        found: dict[str, dict[str, Any]] = {}
        for v in (v for v in key_versions(self.client, bucket, key) if not v.marker):
            for h, row in self._version_rows(bucket, v, fmt, wanted).items():
                mark = {"version_id": v.version_id, "last_modified": v.last_modified,
                        "latest": v.latest}
                if h not in found:
                    found[h] = {**row, "last_modified": v.last_modified, "in_versions": []}
                found[h]["in_versions"].append(mark)
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
