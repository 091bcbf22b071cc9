"""Bulk jobs submitted, by idempotency key, in a small file that outlives the process.

Bulk API 2.0 jobs carry no tag of the caller's: a run killed after submitting a job and
before the host recorded it would, on resume, submit the same deletion again. The job's
id is written here (atomically: a new file renamed over the old) the moment Salesforce
has given it, before its data is uploaded; a repeated call under the same key finds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["Journal"]

#: entries older than this are dropped (a request is due within a month, plus extension)
_KEEP_SECONDS = 120 * 86400


class Journal:
    """``idempotency key -> {object: job id}`` in ``<state_dir>/bulk-jobs.json`` (the
    system's own folder the host gives the connector)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "bulk-jobs.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, object]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data: dict[str, dict[str, object]] = {}
            if self.path.exists():
                data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)

    def jobs(self, key: str) -> dict[str, str]:
        """The jobs submitted under ``key``, by object."""
        with self._locked() as data:
            entry = data.get(key) or {}
            jobs = entry.get("jobs") or {}
            return dict(jobs) if isinstance(jobs, Mapping) else {}

    def record(self, keys: list[str], sobject: str, job_id: str) -> None:
        """Note that ``job_id`` holds ``sobject``'s records of every key in ``keys``."""
        now = time.time()
        with self._locked() as data:
            for key in list(data):
                if now - float(data[key].get("at", now)) > _KEEP_SECONDS:  # type: ignore[arg-type]
                    del data[key]
            for key in keys:
                entry = data.setdefault(key, {"at": now, "jobs": {}})
                jobs = entry.setdefault("jobs", {})
                assert isinstance(jobs, dict)
                jobs[sobject] = job_id

    def forget(self, key: str, sobject: str) -> None:
        with self._locked() as data:
            jobs = (data.get(key) or {}).get("jobs")
            if isinstance(jobs, dict):
                jobs.pop(sobject, None)
