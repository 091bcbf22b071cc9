"""Ticket deletion jobs: submitted for many subjects at once, journalled per subject, read
back by id.

A job takes at most 100 tickets; a call's subjects share jobs, a subject's tickets stay in
one job unless it has more than 100. An item's handle is ``<phase>:<job ids>:<user id>``
(``delete`` or ``purge``; job ids joined by ``+``; the user holding the journal, 0 if
none).

Zendesk takes no idempotency key for these jobs, so each subject's jobs are journalled on
their user as tags ``erasure-<d|p>-<digest>-<job id>`` (the digest of the call's
idempotency key for a deletion, of the deletion's job ids for the permanent deletion that
follows it) before the call returns: a run killed between the submit and the ledger's
write finds its jobs there on the next attempt instead of submitting them again. A user
already soft-deleted cannot be tagged: those jobs are journalled in the system's own
folder under the host's state folder (``Connector.state_dir``; digests and job ids only).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import ZendeskClient

__all__ = ["JOB_SIZE", "Handle", "Jobs", "digest"]

JOB_SIZE = 100
_PATHS = {"delete": "tickets/destroy_many", "purge": "deleted_tickets/destroy_many"}
_LETTER = {"delete": "d", "purge": "p"}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Handle:
    """Which jobs hold an item, in which phase, and whose user journals them."""

    phase: str
    jobs: tuple[str, ...]
    holder: int

    def __str__(self) -> str:
        return f"{self.phase}:{'+'.join(self.jobs)}:{self.holder}"

    @classmethod
    def parse(cls, text: str | None) -> Handle | None:
        try:
            phase, jobs, holder = (text or "").split(":")
            if phase not in _PATHS or not jobs:
                return None
            return cls(phase, tuple(jobs.split("+")), int(holder))
        except ValueError:
            return None


class Jobs:
    """Submits and reads ticket deletion jobs."""

    def __init__(self, client: ZendeskClient, state_dir: Callable[[], Path | None]) -> None:
        self.client = client
        self._state_dir = state_dir

    def _local(self) -> Path | None:
        folder = self._state_dir()
        return folder / "zendesk-jobs.journal" if folder is not None else None

    def journalled(self, user: Mapping[str, Any] | None, phase: str, key_digest: str
                   ) -> tuple[str, ...]:
        """The job ids journalled for ``phase`` under ``key_digest``: on ``user`` (its
        tags), or in the local journal when there is no live user to hold them."""
        prefix = f"erasure-{_LETTER[phase]}-{key_digest}-"
        tags = [t for t in (user or {}).get("tags") or [] if t.startswith(prefix)]
        local = self._local()
        if not tags and local is not None and local.exists():
            tags = [line for line in local.read_text(encoding="utf-8").split()
                    if line.startswith(prefix)]
        return tuple(sorted(t[len(prefix):] for t in tags))

    def submit(self, phase: str, tickets: Mapping[str, Sequence[int]]
               ) -> dict[str, tuple[str, ...]]:
        """One job per 100 tickets of ``tickets`` (per subject key); the job ids of each
        subject."""
        chunks: list[list[tuple[str, int]]] = [[]]
        for key, ids in tickets.items():
            if chunks[-1] and len(chunks[-1]) + len(ids) > JOB_SIZE:
                chunks.append([])
            for tid in ids:
                if len(chunks[-1]) == JOB_SIZE:
                    chunks.append([])
                chunks[-1].append((key, tid))
        out: dict[str, set[str]] = {}
        for chunk in chunks:
            if not chunk:
                continue
            body = self.client.delete(_PATHS[phase], f"submit ticket {phase} job",
                                      ids=",".join(str(t) for _, t in chunk))
            job = str(body["job_status"]["id"])
            for key, _ in chunk:
                out.setdefault(key, set()).add(job)
        return {k: tuple(sorted(v)) for k, v in out.items()}

    def journal(self, holder: int, phase: str, key_digest: str, jobs: Sequence[str]) -> None:
        """Note ``jobs`` on the holder's user (one request), or in the local journal when
        there is none (the user was soft-deleted before)."""
        tags = [f"erasure-{_LETTER[phase]}-{key_digest}-{j}" for j in jobs]
        if holder:
            self.client.put(f"users/{holder}/tags", "journal deletion jobs", {"tags": tags})
            return
        local = self._local()
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            with local.open("a", encoding="utf-8") as fh:
                fh.write("".join(t + "\n" for t in tags))
                fh.flush()
                os.fsync(fh.fileno())

    def statuses(self, ids: set[str]) -> dict[str, dict[str, Any]]:
        """Job statuses by id, 100 a request."""
        out: dict[str, dict[str, Any]] = {}
        ordered = sorted(ids)
        for start in range(0, len(ordered), 100):
            body = self.client.get("job_statuses/show_many", "read job statuses",
                                   ids=",".join(ordered[start:start + 100]))
            out.update({str(j["id"]): j for j in body.get("job_statuses") or []})
        return out
