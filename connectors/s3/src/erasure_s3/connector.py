"""The ``s3`` connector: objects and rows of shared objects in AWS S3 (or S3-compatible)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from erasure import (
    Capability,
    Connector,
    Finding,
    ItemOutcome,
    PermanentError,
    Record,
    Subject,
)

from .client import make_client, s3_errors
from .erase import Eraser
from .exporting import Exporter
from .holds import Restrictor
from .inventory import Buckets
from .locate import Locator
from .settings import S3Settings
from .uploads import stale

__all__ = ["S3Connector"]


class S3Connector(Connector):
    """Personal data in S3 buckets, located per rule by key template, tags, user metadata
    and a content scan; erased with every version and delete marker.

    See the package README for the settings, the rules and what verification checks.
    """

    name = "s3"
    version = "0.1.0"
    Settings = S3Settings
    capabilities = frozenset({Capability.FIND, Capability.EXPORT, Capability.DELETE,
                              Capability.RESTRICT})
    settings: S3Settings

    def __init__(self, system: str, settings: S3Settings) -> None:
        super().__init__(system, settings)
        with s3_errors("create client"):
            self.client: Any = make_client(settings)
        self.buckets = Buckets(self.client, frozenset(settings.allowed_regions))
        self._locator = Locator(self.client, settings, self.buckets)
        self._eraser = Eraser(self.client, self.buckets, settings.max_object_bytes,
                              settings.page_size)
        self._restrictor = Restrictor(self.client, self.buckets, settings)
        self._exporter = Exporter(self.client, settings)

    def check(self) -> None:
        """Every bucket reachable and readable, in an allowed region, and able to restrict
        the way the settings say."""
        problems = []
        for bucket in sorted({r.bucket for r in self.settings.rules}):
            facts = self.buckets.facts(bucket)
            with s3_errors("list object versions"):
                self.client.list_object_versions(Bucket=bucket, MaxKeys=1)
            with s3_errors("list multipart uploads"):
                self.client.list_multipart_uploads(Bucket=bucket, MaxUploads=1)
            if not facts.allowed:
                problems.append(f"bucket {bucket} is in {facts.region}, outside the allowed "
                                "regions (residency)")
            if self.settings.restrict_with == "legal_hold" and not facts.object_lock:
                problems.append(f"bucket {bucket} has no object lock (restrict_with)")
        if problems:
            raise PermanentError("; ".join(problems))

    def advice(self) -> list[str]:
        """Unfinished multipart uploads under the rules' prefixes older than
        ``stale_upload_days``, per bucket (counts and a date, never a key)."""
        return stale(self.client, [(r.bucket, r.prefix) for r in self.settings.rules],
                     self.settings.stale_upload_days)

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        if not subjects:
            return iter(())
        return iter(list(self._locator.find(self.system, subjects)))

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        return self._exporter.export(findings)

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter(self._eraser.delete(findings))

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter(self._restrictor.restrict(findings))

    def discover(self) -> str:
        from .discover import discover

        return discover(self.client, self.settings, self.buckets, self.system)

    def close(self) -> None:
        self._locator.close()
        close = getattr(self.client, "close", None)
        if close is not None:
            close()
