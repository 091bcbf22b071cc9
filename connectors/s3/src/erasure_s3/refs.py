"""Item references: what a finding points at, as stable text.

An object is ``["bucket", "key"]`` (every version of the key); a row of a shared file is
``["bucket", "key", "row", "<hash>"]``, the hash being of the row's bytes, so it stays the
same when the file is written back without other rows. An unfinished multipart upload is
``["bucket", "key", "upload", "<upload id>"]``.
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

from erasure import PermanentError

__all__ = ["Ref", "row_hash"]


class Ref(NamedTuple):
    """A parsed reference."""

    bucket: str
    key: str
    row: str | None = None
    upload: str | None = None

    def text(self) -> str:
        parts = [self.bucket, self.key] + (["row", self.row] if self.row else []) + (
            ["upload", self.upload] if self.upload else [])
        return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str) -> Ref:
        try:
            parts = json.loads(text)
            if len(parts) == 2:
                return cls(str(parts[0]), str(parts[1]))
            if len(parts) == 4 and parts[2] == "row":
                return cls(str(parts[0]), str(parts[1]), str(parts[3]))
            if len(parts) == 4 and parts[2] == "upload":
                return cls(str(parts[0]), str(parts[1]), upload=str(parts[3]))
        except (ValueError, TypeError):
            pass
        raise PermanentError("not a reference of the s3 connector")


def row_hash(line: bytes) -> str:
    """The hash naming one row: of its bytes without the line ending."""
    return hashlib.sha256(line.rstrip(b"\r\n")).hexdigest()[:24]
