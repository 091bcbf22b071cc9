"""Propose rules from what the buckets hold. Sampled content is only counted; no value, and
no key that looks like one, is ever printed, logged or put in the proposal.

Keys are grouped where a rule would start: below an id-named folder (``users/12345/...``:
a key template), or by folder. Up to ``SAMPLE_OBJECTS`` objects of each group are read
(their first ``SAMPLE_BYTES``, gzip inflated), with their tags and user metadata. What is
proposed never deletes a file that holds more than one person: an object whose sample
holds several distinct emails, phones or ids is proposed in ``rows`` mode with its format,
and a key template or a tag rule never covers it. A format the automatic choice cannot read
by its key's suffix is proposed with the content mode that reads it; what nothing can read
(binary) is listed as not scanned.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from erasure.phonetext import written_numbers

from .client import s3_errors
from .inventory import Buckets
from .settings import S3Settings
from .stream import content_format

__all__ = ["discover"]

SAMPLE_OBJECTS = 5  # per group
SAMPLE_BYTES = 64 * 1024  # read from the start of each sampled object
LISTED_KEYS = 1000  # per bucket
_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(rb"(?<![\w+])\+[1-9][0-9]{6,14}(?!\d)")
_PERSONAL_KEY = re.compile(r"@|\+?\d{7,}")
_ID_SEGMENT = re.compile(r"^[0-9]{3,}$|^[0-9a-f-]{32,36}$")
_DATE_SEGMENT = re.compile(r"^(?:19|20)\d\d(?:-?(?:0[1-9]|1[0-2])(?:-?[0-3]\d)?)?$")
_ID_FIELD = re.compile(r"(?:^|[_-])(?:id|customer_?id|user_?id|account_?id|client_?id)$",
                       re.IGNORECASE)
_TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")
_LINE_FORMATS = ("csv", "jsonl", "text")
_PERSONAL_PREFIX = "(a prefix that looks like personal data)/"


@dataclass
class Sample:
    """What one sampled object holds, in counts."""

    fmt: str | None  # how it can be read; None: binary
    by_suffix: bool  # `content = "auto"` reads it (its key's suffix names the format)
    emails: int = 0  # distinct
    phones: int = 0
    ids: int = 0  # distinct values of id-named fields
    tags: dict[str, str] = field(default_factory=dict)  # tag key -> identifier type
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def people(self) -> int:
        """How many people the sample holds at least."""
        return max(self.emails, self.phones, self.ids)


@dataclass
class Group:
    """Keys a rule would cover: below id-named folders, or one folder."""

    prefix: str
    id_type: str | None = None  # keys are <prefix><id>/...: a key template of this type
    keys: list[str] = field(default_factory=list)
    named_after_people: int = 0
    #: what follows the email in keys named ``<email><tail>`` (one tail for all: a template)
    email_tails: set[str] = field(default_factory=set)
    samples: list[Sample] = field(default_factory=list)


def discover(client: Any, settings: S3Settings, buckets: Buckets, system: str) -> str:
    """A TOML proposal of ``[[systems.<system>.rules]]`` with counts as comments."""
    lines = [f"# Proposed rules for system {system}: review before use.",
             "# Counts come from sampled objects; no value is shown. A file holding more "
             "than one person is proposed in rows mode, never for whole-object deletion."]
    for bucket in sorted({r.bucket for r in settings.rules}):
        facts = buckets.facts(bucket)
        where = "allowed" if facts.allowed else "OUTSIDE the allowed regions"
        lines.append(f"\n# bucket {bucket}: region {facts.region} ({where}), "
                     f"versioning {facts.versioning or 'off'}, "
                     f"object lock {'on' if facts.object_lock else 'off'}")
        for group in sorted(_groups(client, bucket).values(), key=lambda g: g.prefix):
            for key in group.keys[:SAMPLE_OBJECTS]:
                group.samples.append(_sample(client, bucket, key, settings.phone_region))
            lines.extend(_proposal(system, bucket, group))
    return "\n".join(lines) + "\n"


def _groups(client: Any, bucket: str) -> dict[str, Group]:
    listed: list[dict[str, Any]] = []
    paginator = client.get_paginator("list_objects_v2")
    with s3_errors("list objects"):
        for page in paginator.paginate(Bucket=bucket,
                                       PaginationConfig={"MaxItems": LISTED_KEYS}):
            listed += page.get("Contents", []) or []
    groups: dict[str, Group] = {}
    for obj in listed:
        key = obj["Key"]
        if key.endswith("/"):
            continue  # a folder placeholder
        parts = key.split("/")
        at = next((i for i in range(1, len(parts) - 1) if _ID_SEGMENT.match(parts[i])
                   and not _DATE_SEGMENT.match(parts[i])), None)
        if at is not None:
            prefix = "/".join(parts[:at]) + "/"
            id_type = "user_id" if "user" in parts[at - 1].lower() else "customer_id"
        else:
            # Date-named folders (logs/2026/12/) are one rule's, not one each.
            end = next((i for i in range(1, len(parts) - 1)
                        if _DATE_SEGMENT.match(parts[i])), len(parts) - 1)
            prefix, id_type = "".join(p + "/" for p in parts[:end]), None
        if _PERSONAL_KEY.search(prefix):
            prefix, id_type = _PERSONAL_PREFIX, None
        group = groups.setdefault(prefix, Group(prefix, id_type))
        group.keys.append(key)
        if _PERSONAL_KEY.search(parts[-1]):
            group.named_after_people += 1
            group.email_tails.add(_email_tail(parts[-1]))
    return groups


def _email_tail(name: str) -> str:
    """What follows the email in a key segment ``<email><tail>`` (``.csv``, ``.csv.gz``);
    "/" when the segment is not of that form."""
    for n in (2, 1, 0):
        pieces = name.rsplit(".", n)
        if len(pieces) == n + 1 and _EMAIL.fullmatch(pieces[0].encode()):
            return name[len(pieces[0]):]
    return "/"


def _sample(client: Any, bucket: str, key: str, region: str | None = None) -> Sample:
    with s3_errors("get object"):
        resp = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{SAMPLE_BYTES - 1}")
        body = resp["Body"]
        try:
            data = body.read()
        finally:
            body.close()
        tagset = client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
    total = str(resp.get("ContentRange") or "").rpartition("/")[2]
    complete = (int(total) if total.isdigit() else len(data)) <= SAMPLE_BYTES
    if data.startswith(b"\x1f\x8b"):
        try:
            data = zlib.decompressobj(wbits=47).decompress(data, 4 * SAMPLE_BYTES)
        except zlib.error:
            data = b""
        complete = False
    by_suffix = content_format(key, None, "auto")
    fmt = by_suffix or _sniff(data)
    if not complete and b"\n" in data:
        data = data[:data.rfind(b"\n") + 1]  # the last line may be cut off
    s = Sample(fmt, by_suffix is not None,
               tags=_identifier_pairs({t["Key"]: t["Value"] for t in tagset}),
               metadata=_identifier_pairs(dict(resp.get("Metadata") or {})))
    if fmt is None:
        return s
    s.emails = len({m.lower() for m in _EMAIL.findall(data)})
    # as written (+44 113 000 0042, 0044..., national forms with the region): not only
    # E.164 without spaces
    s.phones = len({p.decode() for p in _PHONE.findall(data)}
                   | written_numbers(data.decode("utf-8", "replace"), region))
    s.ids = _distinct_ids(data.decode("utf-8", "replace"), fmt)
    return s


def _sniff(data: bytes) -> str | None:
    """The line format of content whose key does not say it; None: binary."""
    if not data or b"\x00" in data[:4096]:
        return None
    text = data.decode("utf-8", "replace")
    if text.count("\ufffd") > len(text) // 100:
        return None
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if not lines:
        return "text"
    try:
        json.loads(lines[0])
        if lines[0].lstrip().startswith("{"):
            return "jsonl"
    except ValueError:
        if text.lstrip().startswith(("{", "[")):
            return "json"
    commas = {line.count(",") for line in lines[:20]}
    if len(lines) > 1 and len(commas) == 1 and commas != {0}:
        return "csv"
    return "text"


def _distinct_ids(text: str, fmt: str) -> int:
    """Distinct values of id-named fields (``customer_id``, ``user_id``, ``id``)."""
    values: set[tuple[str, str]] = set()
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return 0
        cols = [n for n, name in enumerate(rows[0]) if _ID_FIELD.search(name.strip())]
        values = {(str(n), row[n]) for row in rows[1:] for n in cols if n < len(row) and row[n]}
    elif fmt == "jsonl":
        for line in text.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                values |= {(k, str(v)) for k, v in doc.items()
                           if _ID_FIELD.search(k) and isinstance(v, (str, int)) and v != ""}
    per_field = Counter(name for name, _ in values)
    return max(per_field.values(), default=0)


def _identifier_pairs(pairs: dict[str, str]) -> dict[str, str]:
    """Tag or metadata keys whose values look like an identifier -> its type."""
    out = {}
    for name, value in pairs.items():
        if not _TAG_KEY.match(name) or _PERSONAL_KEY.search(name):
            continue
        raw = value.strip().encode()
        if _EMAIL.fullmatch(raw):
            out[name] = "email"
        elif _PHONE.fullmatch(raw):
            out[name] = "phone"
        elif _ID_SEGMENT.match(value.strip()):
            out[name] = "user_id" if "user" in name.lower() else "customer_id"
    return out


def _proposal(system: str, bucket: str, g: Group) -> list[str]:
    samples = g.samples
    holding = [s for s in samples if s.people]
    shared = [s for s in samples if s.people > 1]
    binary = [s for s in samples if s.fmt is None]
    tags = {k: v for s in samples if s.people <= 1 for k, v in s.tags.items()}
    metadata = {k: v for s in samples if s.people <= 1 for k, v in s.metadata.items()}
    head = (f"# prefix {g.prefix or '(root)'}: {len(g.keys)} object(s) listed, "
            f"{len(samples)} sampled, {len(holding)} holding emails, phones or ids "
            f"({sum(s.emails for s in samples)} emails, {sum(s.phones for s in samples)} "
            f"phones)")
    if g.named_after_people:
        head += f"; {g.named_after_people} key(s) named after people"
    out = [head]
    if binary:
        out.append(f"# not scanned: {len(binary)} sampled object(s) in a format no content "
                   "mode reads (binary: images, archives, PDFs)")
    if g.prefix == _PERSONAL_PREFIX:
        return [*out, "# keys hold personal data: choose a prefix by hand"]
    if shared:
        out.extend(_rows_rule(system, bucket, g, shared))
        if any(s.tags or s.metadata for s in shared):
            out.append("# tags or metadata of files holding several people name one of "
                       "them: not proposed (rows mode finds lines by content)")
        return out
    if not (holding or g.id_type or g.named_after_people or tags or metadata):
        return [out[0] + ": nothing proposed", *out[1:]]
    out += [f"[[systems.{system}.rules]]", f"bucket = {json.dumps(bucket)}",
            f"prefix = {json.dumps(g.prefix)}"]
    (tail,) = g.email_tails if len(g.email_tails) == 1 else ("/",)
    if g.id_type:
        out.append(f"key_template = {json.dumps(g.prefix + '{' + g.id_type + '}/')}  "
                   f"# {len(g.keys)} key(s) below id-named folders (or another id type)")
    elif g.named_after_people and "/" not in tail:
        out.append(f"key_template = {json.dumps(g.prefix + '{email}' + tail)}  "
                   f"# {g.named_after_people} key(s) named after an email")
    readable = [s for s in holding if s.fmt] or [s for s in samples if s.fmt]
    out.append(f"content = {json.dumps(_content(readable))}")
    if tags:
        out.append(f"tags = {_inline(tags)}  # sampled tags holding identifiers")
    if metadata:
        out.append(f"metadata = {_inline(metadata)}  # sampled user metadata holding "
                   "identifiers")
    if g.named_after_people and not g.id_type and "/" in tail:
        out.append("# keys are named after people in several ways: choose a key_template "
                   "by hand")
    return out


def _rows_rule(system: str, bucket: str, g: Group, shared: list[Sample]) -> list[str]:
    fmts = {s.fmt for s in shared}
    most = max(s.people for s in shared)
    note = (f"# {len(shared)} sampled object(s) hold more than one person (up to {most} "
            "distinct emails, phones or ids in a sample)")
    if not fmts <= set(_LINE_FORMATS) or len(fmts) != 1:
        return [note + "; their formats (" + ", ".join(sorted(str(f) for f in fmts)) + ") "
                "cannot be edited line by line under one rule: not proposed, review by hand "
                "(never erase such a file whole)"]
    (fmt,) = fmts
    out = [note + ": rows mode erases only a person's lines", f"[[systems.{system}.rules]]",
           f"bucket = {json.dumps(bucket)}", f"prefix = {json.dumps(g.prefix)}",
           'mode = "rows"', f"content = {json.dumps(fmt)}"]
    if g.id_type:
        out.append("# no key_template: objects below the id-named folders hold several people")
    return out


def _content(samples: list[Sample]) -> str:
    """``auto`` where the key suffixes say the format, else the one format sampled;
    ``none`` where nothing sampled is readable."""
    if not samples:
        return "none"
    if all(s.by_suffix for s in samples):
        return "auto"
    fmts = {s.fmt for s in samples if s.fmt}
    return fmts.pop() if len(fmts) == 1 else "text"


def _inline(pairs: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}"
                            for k, v in sorted(pairs.items())) + " }"
