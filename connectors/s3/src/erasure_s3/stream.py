"""Reading objects as a stream of whole-line blocks, gzip or not, in bounded memory."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

__all__ = ["CHUNK", "blocks", "content_format", "decoded", "lines_of"]

#: bytes read from S3 at a time; a line longer than this is carried into the next block.
CHUNK = 1 << 20

_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "json",
    ".txt": "text", ".log": "text", ".tsv": "text", ".md": "text",
}
_TYPES = {
    "application/x-ndjson": "jsonl", "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl", "text/csv": "csv", "application/json": "json",
}


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def content_format(key: str, content_type: str | None, rule_content: str) -> str | None:
    """The format to scan an object as (``jsonl``, ``csv``, ``json``, ``text``), or None
    when it is not scanned (binary, images, archives)."""
    if rule_content == "none":
        return None
    if rule_content != "auto":
        return rule_content
    name = key.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in _TYPES:
        return _TYPES[ctype]
    if ctype.startswith("text/"):
        return "text"
    return None


def decoded(body: Readable, chunk: int = CHUNK,
            info: dict[str, bool] | None = None) -> Iterator[bytes]:
    """The object's bytes, gunzipped when they start with the gzip magic (several gzip
    members in a row too), ``chunk`` bytes of input at a time. ``info["gzip"]`` tells
    which it was."""
    first = body.read(chunk)
    gz = first.startswith(b"\x1f\x8b")
    if info is not None:
        info["gzip"] = gz
    if not gz:
        while first:
            yield first
            first = body.read(chunk)
        return
    inflater = zlib.decompressobj(wbits=47)
    data = first
    while data:
        while data:
            # Bounded output per step: a gzip bomb never sits in memory whole.
            out = inflater.decompress(data, chunk)
            if out:
                yield out
            data = inflater.unconsumed_tail
            if inflater.eof:
                rest = inflater.unused_data
                inflater = zlib.decompressobj(wbits=47)
                data = rest
        data = body.read(chunk)
    tail = inflater.flush()
    if tail:
        yield tail


def blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Re-cut ``chunks`` into blocks that end at a newline (the last one may not), copying
    each byte at most once."""
    carry = b""
    for chunk in chunks:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            carry += chunk
            continue
        if not carry and cut == len(chunk) - 1:
            yield chunk
            continue
        view = memoryview(chunk)
        yield b"".join((carry, view[:cut + 1]))
        carry = bytes(view[cut + 1:])
    if carry:
        yield carry


def lines_of(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Every line with its newline, as stored."""
    for block in blocks(chunks):
        start = 0
        while start < len(block):
            end = block.find(b"\n", start)
            end = len(block) if end < 0 else end + 1
            yield block[start:end]
            start = end


def read_all(body: Any, limit: int) -> bytes | None:
    """The whole (gunzipped) object, or None when it is larger than ``limit``."""
    out = bytearray()
    for chunk in decoded(body):
        out += chunk
        if len(out) > limit:
            return None
    return bytes(out)
