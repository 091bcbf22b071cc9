"""delete and poll: records erased past the Recycle Bin, or honestly reported in it.

With the "Bulk API Hard Delete" permission, a call's active records go to one Bulk API 2.0
``hardDelete`` job per object, answered PENDING with the job id as handle; ``poll`` reads
the job and, once complete, its successful and failed results keyed on the echoed Id.
Without it, records are deleted in composite calls of 200 (results matched by position: a
failed item has no id) and land in the Recycle Bin for 15 days, where queryAll and an
admin still see them: such items are FAILED with the date they leave the bin, so the
receipt says partial, never completed.

A repeat is harmless: a record already gone is answered INVALID_CROSS_REFERENCE_KEY (by
the job or the composite call), which is ALREADY_DONE; one in the bin ENTITY_IS_DELETED.
A hardDelete job cannot reach a record someone deleted before (it is in the bin): with the
permission, ``poll`` purges those with SOAP ``emptyRecycleBin``.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from erasure import Finding, ItemOutcome, ItemStatus, PermanentError, current_call

from .client import Api
from .journal import Journal
from .locate import parse_ref
from .settings import SalesforceSettings
from .soql import chunked, literal

__all__ = ["RECYCLE_BIN_DAYS", "Eraser"]

#: Days Salesforce keeps deleted records in the Recycle Bin.
RECYCLE_BIN_DAYS = 15
_CHUNK = 200  # composite sobjects: at most 200 records a call
_FINISHED_KEPT = 1000  # complete jobs' results kept in memory
_GONE = frozenset({"INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND", "INVALID_ID_FIELD"})


def bin_message(deleted_at: datetime | None) -> str:
    """The receipt's words for a record left in the Recycle Bin."""
    until = (deleted_at or datetime.now(UTC)) + timedelta(days=RECYCLE_BIN_DAYS)
    return (f"in the Recycle Bin until {until.date().isoformat()} (the user lacks the "
            "Bulk API Hard Delete permission, or the record was deleted before)")


def by_object(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        out[parse_ref(f.ref)[0]].append(f)
    return out


class Eraser:
    """Deletes findings' records and follows their bulk jobs."""

    def __init__(self, api: Api, settings: SalesforceSettings,
                 journal: Callable[[], Journal | None]) -> None:
        self.api = api
        self.settings = settings
        self.journal = journal  # None outside a host: no state folder to keep jobs in
        self._hard_delete: bool | None = None
        # A complete job never changes: its results are kept (for this process), so a
        # poll that failed half-way does not read them again.
        self._finished: dict[str, tuple[set[str], dict[str, str]]] = {}

    # permission ---------------------------------------------------------------------------

    def hard_delete_allowed(self, *, fresh: bool = False) -> bool:
        """Whether the user holds "Bulk API Hard Delete" (through any permission set, the
        profile's included)."""
        if self._hard_delete is None or fresh:
            user = self.api.user_id()
            soql = ("SELECT Id FROM PermissionSetAssignment WHERE AssigneeId = "  # noqa: S608 - values go through literal()
                    f"{literal(user)} AND PermissionSet.PermissionsBulkApiHardDelete = true "
                    "LIMIT 1")
            self._hard_delete = any(True for _ in self.api.query(soql, "permission check"))
        return self._hard_delete

    # state ------------------------------------------------------------------------------------

    def states(self, sobject: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``id -> {IsDeleted, SystemModstamp}`` of the ids that still exist (active or in
        the Recycle Bin); ids absent are gone for good."""
        out: dict[str, dict[str, Any]] = {}
        for soql in chunked(sorted(set(ids)), lambda part: (
                f"SELECT Id, IsDeleted, SystemModstamp FROM {sobject} WHERE Id IN "  # noqa: S608 - values go through literal()
                f"({', '.join(literal(i) for i in part)})")):
            for r in self.api.query(soql, f"queryAll {sobject}", include_deleted=True):
                out[r["Id"]] = r
        return out

    # delete -----------------------------------------------------------------------------------

    def delete(self, findings: Sequence[Finding]) -> list[ItemOutcome]:
        if not findings:
            return []
        if self.hard_delete_allowed():
            out: list[ItemOutcome] = []
            groups = list(by_object(findings).items())
            for n, (sobject, group) in enumerate(groups):  # a job holds one object
                try:
                    out.extend(self._submit(sobject, group))
                except PermanentError as exc:
                    if "FEATURENOTENABLED" not in str(exc):
                        raise
                    # The permission was taken away since it was read: the rest goes to
                    # the Recycle Bin and says so (partial), as without it.
                    self._hard_delete = False
                    rest = [f for _, g in groups[n:] for f in g]
                    return out + self._composite_delete(rest)
            return out
        return self._composite_delete(findings)  # a composite call takes any objects

    def _composite_delete(self, findings: Sequence[Finding]) -> list[ItemOutcome]:
        out = []
        for start in range(0, len(findings), _CHUNK):
            chunk = findings[start:start + _CHUNK]
            ids = ",".join(parse_ref(f.ref)[1] for f in chunk)
            results = self.api.json("DELETE", "composite/sobjects", "composite delete",
                                    params={"ids": ids, "allOrNone": "false"})
            if not isinstance(results, list) or len(results) != len(chunk):
                raise PermanentError("composite delete: answer does not match the request")
            for f, r in zip(chunk, results, strict=True):  # by position: failures lack an id
                if r.get("success"):
                    out.append(ItemOutcome(f, ItemStatus.FAILED, error=bin_message(None)))
                    continue
                code = str((r.get("errors") or [{}])[0].get("statusCode") or "UNKNOWN")
                if code in _GONE:
                    out.append(ItemOutcome(f, ItemStatus.ALREADY_DONE))
                elif code == "ENTITY_IS_DELETED":
                    out.append(ItemOutcome(f, ItemStatus.FAILED, error=bin_message(None)))
                else:
                    out.append(ItemOutcome(f, ItemStatus.FAILED, error=f"delete: {code}",
                                           transient=code == "UNABLE_TO_LOCK_ROW"))
        return out

    def _submit(self, sobject: str, findings: Sequence[Finding]) -> list[ItemOutcome]:
        """One hardDelete job for ``findings`` (one object), unless a job was already
        submitted under their subjects' idempotency keys."""
        journal = self.journal()
        keys = _keys(findings) if journal is not None else {}
        out = []
        fresh: list[Finding] = []
        for f in findings:
            key = keys.get(f.subject)
            job_id = journal.jobs(key).get(sobject) if key and journal else None
            if job_id and self._usable(job_id):
                out.append(ItemOutcome(f, ItemStatus.PENDING, handle=job_id))
            else:
                fresh.append(f)
        if not fresh:
            return out
        info = self.api.json("POST", "jobs/ingest", "bulk job create", json={
            "object": sobject, "operation": "hardDelete", "contentType": "CSV",
            "lineEnding": "LF"})
        job_id = str(info["id"])
        # Noted before the upload: a run killed from here on finds this job again.
        if journal is not None:
            journal.record(sorted({keys[f.subject] for f in fresh if f.subject in keys}),
                           sobject, job_id)
        body = "Id\n" + "".join(parse_ref(f.ref)[1] + "\n" for f in fresh)
        self.api.request("PUT", f"jobs/ingest/{job_id}/batches", "bulk job upload",
                         data=body.encode(), headers={"Content-Type": "text/csv"})
        self.api.json("PATCH", f"jobs/ingest/{job_id}", "bulk job close",
                      json={"state": "UploadComplete"})
        out.extend(ItemOutcome(f, ItemStatus.PENDING, handle=job_id) for f in fresh)
        return out

    def _read_job(self, job_id: str) -> dict[str, Any]:
        """The job's info; read once per host call (a retried call reuses it)."""
        memo = self.api.call_memo()
        if memo is not None and ("job", job_id) in memo:
            return memo[("job", job_id)][0]
        info = self.api.json("GET", f"jobs/ingest/{job_id}", "bulk job read")
        if memo is not None:
            memo[("job", job_id)] = [info]
        return dict(info)

    def _usable(self, job_id: str) -> bool:
        """Whether a journaled job will run. One still Open (the run that made it died
        before closing it) is aborted, never run: its upload may be incomplete."""
        try:
            state = self._read_job(job_id).get("state")
        except PermanentError:
            return False  # unknown to Salesforce (deleted after 7 days): submit anew
        if state == "Open":
            self.api.json("PATCH", f"jobs/ingest/{job_id}", "bulk job abort",
                          json={"state": "Aborted"})
            memo = self.api.call_memo()
            if memo is not None:
                memo.pop(("job", job_id), None)
            return False
        return state in ("UploadComplete", "InProgress", "JobComplete")

    # poll ---------------------------------------------------------------------------------

    def poll(self, pending: Sequence[ItemOutcome]) -> list[ItemOutcome]:
        by_job: dict[str, list[ItemOutcome]] = defaultdict(list)
        for o in pending:
            by_job[o.handle or ""].append(o)
        out: list[ItemOutcome] = []
        in_bin: list[ItemOutcome] = []
        for job_id, items in by_job.items():
            if not job_id:
                out.extend(ItemOutcome(o.finding, ItemStatus.FAILED, error="no job id")
                           for o in items)
                continue
            state: str | None
            if job_id in self._finished:
                state, info = "JobComplete", {}
            else:
                info = self._read_job(job_id)
                state = info.get("state")
            if state in ("Open", "UploadComplete", "InProgress"):
                out.extend(ItemOutcome(o.finding, ItemStatus.PENDING, handle=job_id)
                           for o in items)
                continue
            if state != "JobComplete":  # Failed or Aborted: the records are as they were
                out.extend(ItemOutcome(o.finding, ItemStatus.FAILED,
                                       error=f"bulk job {state}: erase again") for o in items)
                continue
            done, failed = self._results(job_id, info)
            for o in items:
                record_id = parse_ref(o.finding.ref)[1]
                if record_id in done:
                    out.append(ItemOutcome(o.finding, ItemStatus.DONE))
                    continue
                code = failed.get(record_id)
                if code is None:
                    out.append(ItemOutcome(o.finding, ItemStatus.FAILED,
                                           error="bulk job: item missing from the results"))
                elif code in _GONE:
                    out.append(ItemOutcome(o.finding, ItemStatus.ALREADY_DONE))
                elif code == "ENTITY_IS_DELETED":
                    in_bin.append(o)  # deleted before: a hardDelete cannot reach it
                else:
                    out.append(ItemOutcome(o.finding, ItemStatus.FAILED,
                                           error=f"hard delete: {code}"))
        out.extend(self._empty_bin(in_bin))
        return out

    def _empty_bin(self, items: Sequence[ItemOutcome]) -> list[ItemOutcome]:
        """Records the job found already in the Recycle Bin (someone deleted them before)
        are purged from it (SOAP emptyRecycleBin, 200 a call)."""
        out = []
        for start in range(0, len(items), _CHUNK):
            chunk = items[start:start + _CHUNK]
            codes = self.api.empty_recycle_bin([parse_ref(o.finding.ref)[1] for o in chunk])
            for o, code in zip(chunk, codes, strict=True):
                if code is None:
                    out.append(ItemOutcome(o.finding, ItemStatus.DONE))
                elif code in _GONE:
                    out.append(ItemOutcome(o.finding, ItemStatus.ALREADY_DONE))
                else:
                    out.append(ItemOutcome(o.finding, ItemStatus.FAILED,
                                           error=bin_message(None)))
        return out

    def _results(self, job_id: str, info: Mapping[str, Any]
                 ) -> tuple[set[str], dict[str, str]]:
        """(ids deleted, id -> error code of those that failed), keyed on the echoed Id.
        A result list the job's counts say is empty is not read."""
        if job_id in self._finished:
            return self._finished[job_id]
        processed = int(info.get("numberRecordsProcessed") or 0)
        failures = int(info.get("numberRecordsFailed") or 0)
        done: set[str] = set()
        if processed > failures:
            done = {row.get("Id") or row.get("sf__Id") or "" for row in self._csv(
                job_id, "successfulResults")}
        failed = {}
        if failures:
            for row in self._csv(job_id, "failedResults"):
                code = (row.get("sf__Error") or "UNKNOWN").split(":", 1)[0]
                failed[row.get("Id") or row.get("sf__Id") or ""] = code
        if len(self._finished) >= _FINISHED_KEPT:
            self._finished.pop(next(iter(self._finished)))
        self._finished[job_id] = (done, failed)
        return done, failed

    def _csv(self, job_id: str, kind: str) -> list[dict[str, str]]:
        memo = self.api.call_memo()
        if memo is not None and (kind, job_id) in memo:
            return memo[(kind, job_id)]
        response = self.api.request("GET", f"jobs/ingest/{job_id}/{kind}/",
                                    "bulk job results", headers={"Accept": "text/csv"})
        rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
        if memo is not None:
            memo[(kind, job_id)] = rows
        return rows

    # lookup -------------------------------------------------------------------------------

    def lookup(self, findings: Sequence[Finding]) -> list[Finding]:
        """The findings whose records still exist, in the Recycle Bin included."""
        out: list[Finding] = []
        for sobject, group in by_object(findings).items():
            states = self.states(sobject, [parse_ref(f.ref)[1] for f in group])
            out.extend(f for f in group if parse_ref(f.ref)[1] in states)
        return out


def _keys(findings: Sequence[Finding]) -> dict[str, str]:
    """Idempotency key per subject of the host's call (none outside one: no journal)."""
    try:
        ctx = current_call()
    except RuntimeError:
        return {}
    out = {}
    for f in findings:
        try:
            out[f.subject] = ctx.idempotency_key(f.subject)
        except KeyError:
            continue
    return out
