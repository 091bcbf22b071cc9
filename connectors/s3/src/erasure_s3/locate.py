"""find: which objects (or rows of shared objects) hold data of a batch of subjects.

One listing of every version under each rule's prefix, then per version at most one read
of its content for the whole batch, plus a tag or metadata read where a rule asks for one.
Old versions count: in a versioned bucket they still hold the data after a "delete". So do
unfinished multipart uploads of the subject's keys (one listing per object-mode rule).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from erasure import Finding, Identifier, IdentifierType, Subject

from .client import s3_errors
from .inventory import Buckets, Version, versions_under
from .matching import SELF_IDENTIFYING, Matcher, csv_header, leaves, line_values
from .refs import Ref, row_hash
from .settings import Rule, S3Settings
from .stream import blocks, content_format, decoded, read_all
from .uploads import uploads_under

__all__ = ["Located", "Locator", "same_value", "scan_version", "template_regex"]

OUTSIDE = "-outside-residency"


def same_value(text: str, ident: Identifier) -> bool:
    """Whether a whole value (a tag, a metadata value, a key segment) is ``ident``."""
    text = text.strip()
    if ident.type is IdentifierType.EMAIL:
        return text.lower() == ident.value
    if ident.type is IdentifierType.NAME:
        return " ".join(text.split()).casefold() == ident.value.casefold()
    if ident.type is IdentifierType.PHONE:
        return re.sub(r"[\s().-]", "", text) == ident.value
    return text == ident.value


def template_regex(template: str) -> re.Pattern[str]:
    """``customers/{customer_id}/`` -> a regex matching keys below it, the value as group
    ``v`` (one key segment)."""
    head, _, rest = template.partition("{")
    tail = rest.partition("}")[2]
    return re.compile(re.escape(head) + r"(?P<v>[^/]+?)" + re.escape(tail) + ("" if tail
                      else "(?:/|$)"))


@dataclass
class Located:
    """What was found on one item for one subject."""

    kind: str
    matched: set[Identifier] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)


@dataclass
class VersionScan:
    """Identifiers found in one version's content: whole object, and per row hash."""

    found: set[Identifier] = field(default_factory=set)
    rows: dict[str, set[Identifier]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


class VersionCache:
    """Small objects' bytes and metadata by version id, kept between finds.

    A version's content and user metadata never change (a change is a new version), so a
    repeated find (verification after a delete) need not read them again. Tags can change
    and are never cached; nor is anything of an unversioned key (version id "null").
    """

    def __init__(self, max_object: int = 256 << 10, max_total: int = 32 << 20) -> None:
        self.max_object, self.max_total = max_object, max_total
        self._items: OrderedDict[tuple[str, str, str], tuple[dict[str, str], bytes]] = \
            OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, bucket: str, v: Version) -> tuple[dict[str, str], bytes] | None:
        with self._lock:
            item = self._items.get((bucket, v.key, v.version_id))
            if item is not None:
                self._items.move_to_end((bucket, v.key, v.version_id))
            return item

    def put(self, bucket: str, v: Version, metadata: dict[str, str], data: bytes) -> None:
        if v.version_id == "null" or len(data) > self.max_object:
            return
        with self._lock:
            self._items[(bucket, v.key, v.version_id)] = (metadata, data)
            self._size += len(data)
            while self._size > self.max_total:
                _, (_, old) = self._items.popitem(last=False)
                self._size -= len(old)


def scan_version(client: Any, bucket: str, version: Version, fmt: str, matcher: Matcher,
                 text_matcher: Matcher, limit: int,
                 cache: VersionCache | None = None) -> VersionScan:
    """Read one version once and re-check every candidate line (or the whole JSON
    document) for the batch's identifiers."""
    out = VersionScan()
    cached = cache.get(bucket, version) if cache is not None else None
    if cached is not None:
        out.metadata = dict(cached[0])
        _scan_bytes(cached[1], fmt, matcher, text_matcher, out)
        return out
    with s3_errors("get object"):
        resp = client.get_object(Bucket=bucket, Key=version.key, VersionId=version.version_id)
        out.metadata = dict(resp.get("Metadata") or {})
        body = resp["Body"]
        try:
            small = cache is not None and int(resp.get("ContentLength") or 0) <= cache.max_object
            if fmt == "json" or small:
                data = read_all(body, limit)
                if data is not None:
                    if cache is not None:
                        cache.put(bucket, version, out.metadata, data)
                    _scan_bytes(data, fmt, matcher, text_matcher, out)
                    return out
                resp = client.get_object(Bucket=bucket, Key=version.key,
                                         VersionId=version.version_id)
                body, fmt = resp["Body"], "text"  # too big to parse: scan as text
            scan_lines(decoded(body), fmt, matcher if fmt != "text" else text_matcher, out)
        finally:
            body.close()
    return out


def _scan_bytes(data: bytes, fmt: str, matcher: Matcher, text_matcher: Matcher,
                out: VersionScan) -> None:
    if fmt == "json":
        _scan_document(data, matcher, text_matcher, out)
    else:
        scan_lines([data], fmt, matcher if fmt != "text" else text_matcher, out)


def scan_lines(chunks: Any, fmt: str, matcher: Matcher, out: VersionScan) -> None:
    """Candidate lines by the automaton, each re-checked field by field."""
    header: list[str] | None = None
    first = True
    for block in blocks(chunks):
        if first and fmt == "csv":
            end = block.find(b"\n")
            header = csv_header(block[:len(block) if end < 0 else end]
                                .decode("utf-8", "replace").rstrip("\r"))
        for (start, end), idents in matcher.candidates(block).items():
            if first and start == 0 and fmt == "csv":
                continue  # the header names columns; it holds nobody's data
            raw = block[start:end]
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if all(i.type in SELF_IDENTIFYING for i in idents):
                # Emails, phones and IPs count in any field, as whole tokens: the line's
                # text answers that without parsing it (the automaton saw the same bytes).
                got = matcher.recheck([("", line)], idents)
            else:
                got = matcher.recheck(line_values(line, fmt, header), idents)
            if got:
                out.found |= got
                out.rows.setdefault(row_hash(raw), set()).update(got)
        first = False


def _scan_document(data: bytes, matcher: Matcher, text_matcher: Matcher,
                   out: VersionScan) -> None:
    idents = set().union(*matcher.candidates(data).values()) if matcher else set()
    if not idents:
        return
    try:
        doc = json.loads(data)
    except ValueError:
        scan_lines([data], "text", text_matcher, out)
        return
    out.found |= matcher.recheck(leaves(doc), idents)


class Locator:
    """find over every rule of a system, for one batch of subjects."""

    def __init__(self, client: Any, settings: S3Settings, buckets: Buckets) -> None:
        self.client = client
        self.settings = settings
        self.buckets = buckets
        self._executor: cf.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.cache = VersionCache()

    def find(self, system: str, subjects: Sequence[Subject]) -> Iterator[Finding]:
        found: dict[tuple[str, str], Located] = {}
        for rule in self.settings.rules:
            self._rule(rule, subjects, found)
        order = {s.key: n for n, s in enumerate(subjects)}
        for (subject, ref), loc in sorted(found.items(), key=lambda i: (order[i[0][0]], i[0][1])):
            yield Finding(system=system, subject=subject, ref=ref, kind=loc.kind,
                          matched=tuple(sorted(loc.matched, key=lambda i: (i.type, i.value))),
                          fields=tuple(sorted(loc.fields)))

    def _rule(self, rule: Rule, subjects: Sequence[Subject],
              found: dict[tuple[str, str], Located]) -> None:
        facts = self.buckets.facts(rule.bucket)
        suffix = "" if facts.allowed else OUTSIDE
        region_field = {f"region:{facts.region}"} if not facts.allowed else set()
        region = self.settings.phone_region
        matcher = (Matcher(subjects, rule.fields, region=region) if rule.content != "none"
                   else None)
        text_matcher = Matcher(subjects, {}, structured=False, region=region)
        owners = _owners(subjects)
        template = template_regex(rule.key_template) if rule.key_template else None
        ttype = rule.template_type

        def hit(subject: str, ref: Ref, kind: str, ident: Identifier, source: str) -> None:
            loc = found.setdefault((subject, ref.text()), Located(kind + suffix))
            loc.matched.add(ident)
            loc.fields.add(source)
            loc.fields |= region_field

        def read(version: Version) -> tuple[str | None, VersionScan | None, dict[str, str],
                                            dict[str, str]]:
            # Everything one version needs from S3; runs on the worker threads.
            fmt = content_format(version.key, None, rule.content) if matcher else None
            scan = None
            if fmt is not None and matcher:
                scan = scan_version(self.client, rule.bucket, version, fmt, matcher,
                                    text_matcher, self.settings.max_object_bytes, self.cache)
            meta: dict[str, str] = {}
            if rule.metadata:
                meta = scan.metadata if scan is not None else self._metadata(rule, version)
            tags = self._tags(rule.bucket, version) if rule.tags else {}
            return fmt, scan, meta, tags

        for window in _windows(versions_under(self.client, rule.bucket, rule.prefix)):
            data = [v for versions in window for v in versions if not v.marker]
            # S3 answers each read after a round trip: read several versions at once.
            reads = dict(zip(data, self._pool().map(read, data), strict=True))
            for versions in window:
                key = versions[0].key
                ref = Ref(rule.bucket, key)
                if template is not None and ttype is not None:
                    m = template.match(key)
                    if m:
                        for ident, subject in owners.get(ttype, {}).get(_norm(ttype, m["v"]),
                                                                        ()):
                            hit(subject, ref, "object", ident, "key")
                for version in versions:
                    if version.marker:
                        continue  # a delete marker holds no data (its key was matched above)
                    fmt, scan, meta, tags = reads[version]
                    if scan is not None:
                        self._content(rule, ref, fmt or "", scan, matcher, text_matcher, hit)
                    if rule.metadata:
                        self._pairs(rule.metadata, meta, owners, "metadata",
                                    lambda s, i, src, r=ref: hit(s, r, "object", i, src))
                    if rule.tags:
                        self._pairs(rule.tags, tags, owners, "tag",
                                    lambda s, i, src, r=ref: hit(s, r, "object", i, src))
        if rule.mode == "object":
            self._uploads(rule, subjects, found, hit)

    def _uploads(self, rule: Rule, subjects: Sequence[Subject],
                 found: dict[tuple[str, str], Located], hit: Any) -> None:
        """Unfinished multipart uploads (listing versions never shows them) of the subject:
        under a key the template gives them, or writing a new version of an object found
        as theirs. Never in rows mode: an upload of a shared file is everyone's."""
        template = template_regex(rule.key_template) if rule.key_template else None
        ttype = rule.template_type
        owners = _owners(subjects) if ttype is not None else {}
        for up in uploads_under(self.client, rule.bucket, rule.prefix):
            uref = Ref(rule.bucket, up.key, upload=up.upload_id)
            m = template.match(up.key) if template is not None else None
            if m and ttype is not None:
                for ident, subject in owners.get(ttype, {}).get(_norm(ttype, m["v"]), ()):
                    hit(subject, uref, "upload", ident, "key")
            key = Ref(rule.bucket, up.key).text()
            for s in subjects:
                loc = found.get((s.key, key))
                if loc is not None:
                    for ident in sorted(loc.matched, key=lambda i: (i.type, i.value)):
                        hit(s.key, uref, "upload", ident, "object")

    @staticmethod
    def _content(rule: Rule, ref: Ref, fmt: str, scan: VersionScan, matcher: Any,
                 text_matcher: Matcher, hit: Any) -> None:
        def owners(ident: Identifier) -> list[str]:
            return list(matcher.owners.get(ident) or text_matcher.owners[ident])

        if rule.mode == "object":
            for ident in scan.found:
                for subject in owners(ident):
                    hit(subject, ref, "object", ident, f"content:{fmt}")
            return
        for rhash, idents in scan.rows.items():
            rref = Ref(ref.bucket, ref.key, rhash)
            for ident in idents:
                for subject in owners(ident):
                    hit(subject, rref, "row", ident, f"content:{fmt}")

    def _pool(self) -> cf.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = cf.ThreadPoolExecutor(
                    max_workers=self.settings.read_workers, thread_name_prefix="erasure-s3")
            return self._executor

    def close(self) -> None:
        """Stop the reader threads."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    @staticmethod
    def _pairs(wanted: dict[str, IdentifierType], values: dict[str, str],
               owners: Owners, source: str, hit: Any) -> None:
        lowered = {k.lower(): v for k, v in values.items()}
        for name, itype in wanted.items():
            value = lowered.get(name.lower())
            if value is None:
                continue
            for ident, subject in owners.get(itype, {}).get(_norm(itype, value), ()):
                if same_value(value, ident):
                    hit(subject, ident, f"{source}:{name}")

    def _metadata(self, rule: Rule, version: Version) -> dict[str, str]:
        with s3_errors("head object"):
            resp = self.client.head_object(Bucket=rule.bucket, Key=version.key,
                                           VersionId=version.version_id)
        return dict(resp.get("Metadata") or {})

    def _tags(self, bucket: str, version: Version) -> dict[str, str]:
        with s3_errors("get object tagging"):
            resp = self.client.get_object_tagging(Bucket=bucket, Key=version.key,
                                                  VersionId=version.version_id)
        return {t["Key"]: t["Value"] for t in resp.get("TagSet", [])}


def _windows(keys: Iterator[list[Version]], size: int = 256) -> Iterator[list[list[Version]]]:
    """Keys (with their versions) in groups of ``size``: reads overlap within a group, and
    memory stays bounded however large the bucket."""
    window: list[list[Version]] = []
    for versions in keys:
        window.append(versions)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def _norm(itype: IdentifierType, value: str) -> str:
    """The lookup key of a value of ``itype`` (exactness is re-checked by same_value)."""
    value = value.strip()
    if itype is IdentifierType.EMAIL:
        return value.lower()
    if itype is IdentifierType.NAME:
        return " ".join(value.split()).casefold()
    if itype is IdentifierType.PHONE:
        return re.sub(r"[\s().-]", "", value)
    return value


Owners = dict[IdentifierType, dict[str, list[tuple[Identifier, str]]]]


def _owners(subjects: Sequence[Subject]) -> Owners:
    """Per type, normalised value -> (identifier, subject key) pairs."""
    out: Owners = {}
    for s in subjects:
        for ident in s.identifiers:
            out.setdefault(ident.type, {}).setdefault(_norm(ident.type, ident.value), []).append(
                (ident, s.key))
    return out
