"""The fake org's data and behaviour: records, the Recycle Bin, searches, bulk jobs.

Every method takes and returns plain values; :mod:`.server` turns HTTP into calls here.
:class:`ApiError` carries the status and body the real REST API answers with.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .lang import Malformed, parse_soql, parse_sosl, sosl_tokens

__all__ = ["SCHEMA", "ApiError", "Org", "sf_id"]

#: Field types per object (the subset of the standard objects the fake knows).
_SYSTEM = {"Id": "id", "IsDeleted": "boolean", "CreatedDate": "datetime",
           "LastModifiedDate": "datetime", "SystemModstamp": "datetime"}
SCHEMA: dict[str, dict[str, str]] = {
    "Contact": {"FirstName": "string", "LastName": "string", "Name": "string",
                "Email": "email", "Phone": "phone", "MobilePhone": "phone",
                "HomePhone": "phone", "OtherPhone": "phone", "AccountId": "reference",
                "IndividualId": "reference", "HasOptedOutOfEmail": "boolean",
                "DoNotCall": "boolean", "Title": "string", "Description": "textarea",
                "MailingStreet": "textarea", "MailingCity": "string"},
    "Lead": {"FirstName": "string", "LastName": "string", "Name": "string",
             "Email": "email", "Phone": "phone", "MobilePhone": "phone",
             "Company": "string", "IndividualId": "reference",
             "HasOptedOutOfEmail": "boolean", "DoNotCall": "boolean",
             "Description": "textarea", "Street": "textarea", "City": "string"},
    "Account": {"Name": "string", "Phone": "phone", "Website": "url",
                "Description": "textarea"},
    "Case": {"ContactId": "reference", "AccountId": "reference", "SuppliedEmail": "email",
             "SuppliedName": "string", "SuppliedPhone": "phone", "Subject": "string",
             "Description": "textarea", "Status": "picklist"},
    "Task": {"WhoId": "reference", "WhatId": "reference", "Subject": "string",
             "Description": "textarea", "Status": "picklist"},
    "EmailMessage": {"ParentId": "reference", "RelatedToId": "reference",
                     "FromAddress": "email", "FromName": "string", "ToAddress": "string",
                     "CcAddress": "string", "BccAddress": "string", "Subject": "string",
                     "TextBody": "textarea"},
    "Campaign": {"Name": "string"},
    "CampaignMember": {"CampaignId": "reference", "ContactId": "reference",
                       "LeadId": "reference", "Email": "email", "Status": "picklist"},
    "Individual": {"FirstName": "string", "LastName": "string", "Name": "string",
                   "HasOptedOutProcessing": "boolean", "HasOptedOutSolicit": "boolean",
                   "HasOptedOutProfiling": "boolean", "HasOptedOutTracking": "boolean"},
    "User": {"Username": "string", "Name": "string", "Email": "email"},
    "PermissionSetAssignment": {"AssigneeId": "reference", "PermissionSetId": "reference",
                                "PermissionSet": "relationship"},
}
_PREFIX = {"Contact": "003", "Lead": "00Q", "Account": "001", "Case": "500", "Task": "00T",
           "EmailMessage": "02s", "Campaign": "701", "CampaignMember": "00v",
           "Individual": "0PK", "User": "005", "PermissionSetAssignment": "0Pa",
           "Job": "750", "Cursor": "01g"}
_READ_ONLY = {"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp", "Name",
              "PermissionSet"}
_REQUIRED = {"Contact": ("LastName",), "Lead": ("LastName", "Company"),
             "Individual": ("LastName",)}
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
#: Days a deleted record stays in the Recycle Bin (and visible to queryAll).
RECYCLE_DAYS = 15


def sf_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce id: 15 case-sensitive characters and the checksum."""
    base = f"{prefix}{'0' * (12 - len(str(n)) - 3)}AAA{n}"[:15]
    base = base[:3] + base[3:].rjust(12, "0")
    suffix = ""
    for chunk in (base[0:5], base[5:10], base[10:15]):
        bits = sum(1 << i for i, c in enumerate(chunk) if "A" <= c <= "Z")
        suffix += _ALNUM[bits]
    return base + suffix


class ApiError(Exception):
    """An error answer: HTTP ``status`` and the REST API's ``[{errorCode, message}]``."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})

    def body(self) -> list[dict[str, Any]]:
        return [{"errorCode": self.code, "message": self.message}]


@dataclass
class Job:
    """A Bulk API 2.0 ingest job; its state moves one step each time it is read."""

    id: str
    object: str
    operation: str
    created_by: str
    state: str = "Open"
    ids: list[str] = field(default_factory=list)
    results: list[tuple[str, str | None]] = field(default_factory=list)  # (id, error)
    created: str = ""

    def info(self) -> dict[str, Any]:
        done = [r for r in self.results if r[1] is None]
        return {"id": self.id, "operation": self.operation, "object": self.object,
                "createdById": self.created_by, "createdDate": self.created,
                "systemModstamp": self.created, "state": self.state,
                "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": 59.0,
                "jobType": "V2Ingest", "lineEnding": "LF", "columnDelimiter": "COMMA",
                "numberRecordsProcessed": len(self.results) if self.state == "JobComplete"
                else 0,
                "numberRecordsFailed": len(self.results) - len(done)
                if self.state == "JobComplete" else 0}


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


class Org:
    """One Salesforce org: records by object, the Recycle Bin, users, jobs and call counts.

    Thread-safe: the server handles requests on many threads; one lock guards everything.
    """

    def __init__(self, *, hard_delete: bool = True, page_size: int = 2000,
                 search_cap: int = 2000, api_limit: int = 15000) -> None:
        self.lock = threading.RLock()
        self.records: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in SCHEMA}
        self.jobs: dict[str, Job] = {}
        self.cursors: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self.calls: Counter[str] = Counter()
        self.page_size = page_size
        self.search_cap = search_cap
        self.api_limit = api_limit
        self.api_used = 0
        self.locked: set[str] = set()  # ids whose deletion fails ENTITY_IS_LOCKED
        self.undeletable: set[str] = set()  # ids whose deletion fails DELETE_FAILED
        self._n = itertools.count(1)
        self.user_id = self.create("User", {"Username": "integration@example.invalid",
                                            "Name": "Integration User"}, count=False)
        self.hard_delete_permission(hard_delete)

    # set-up (tests and the demo) -----------------------------------------------------------

    def hard_delete_permission(self, granted: bool) -> None:
        """Grant or revoke "Bulk API Hard Delete" for the integration user."""
        with self.lock:
            for rid in list(self.records["PermissionSetAssignment"]):
                del self.records["PermissionSetAssignment"][rid]
            if granted:
                self.create("PermissionSetAssignment", {
                    "AssigneeId": self.user_id, "PermissionSetId": sf_id("0PS", 1),
                    "PermissionSet": {"PermissionsBulkApiHardDelete": True}}, count=False)

    def create(self, sobject: str, values: Mapping[str, Any], *, count: bool = True) -> str:
        """Insert one record (as an API create or a seed) and return its id."""
        with self.lock:
            rid = sf_id(_PREFIX[sobject], next(self._n))
            now = _stamp(_now())
            # Checkboxes are false unless set, as in Salesforce.
            record: dict[str, Any] = {f: (False if t == "boolean" else None)
                                      for f, t in SCHEMA[sobject].items()}
            record["IsDeleted"] = False
            record.update({"Id": rid, "CreatedDate": now, "LastModifiedDate": now,
                           "SystemModstamp": now})
            for k, v in values.items():
                if k not in SCHEMA[sobject]:
                    raise ApiError(400, "INVALID_FIELD", f"No such column '{k}' on {sobject}")
                record[k] = v
            self._derive(sobject, record)
            self.records[sobject][rid] = record
            return rid

    def get(self, rid: str) -> dict[str, Any] | None:
        """A record by id, deleted or not; None once hard-deleted."""
        sobject = self.object_of(rid)
        return None if sobject is None else self.records[sobject].get(rid)

    def object_of(self, rid: str) -> str | None:
        prefix = rid[:3]
        return next((o for o, p in _PREFIX.items() if p == prefix and o in SCHEMA), None)

    def exists(self, rid: str) -> bool:
        """Whether the record is anywhere: active or in the Recycle Bin."""
        return self.get(rid) is not None

    def in_recycle_bin(self, rid: str) -> bool:
        record = self.get(rid)
        return bool(record and record["IsDeleted"])

    def age_recycle_bin(self, days: float) -> None:
        """Let time pass for the Recycle Bin: records past 15 days are purged."""
        with self.lock:
            for rows in self.records.values():
                for rid, r in list(rows.items()):
                    if r["IsDeleted"]:
                        deleted = datetime.strptime(r["SystemModstamp"],
                                                    "%Y-%m-%dT%H:%M:%S.000+0000")
                        deleted = deleted.replace(tzinfo=UTC) - timedelta(days=days)
                        r["SystemModstamp"] = _stamp(deleted)
                        if _now() - deleted > timedelta(days=RECYCLE_DAYS):
                            del rows[rid]

    # usage ---------------------------------------------------------------------------------

    def count(self, endpoint: str) -> str:
        """Count one API request; returns the Sforce-Limit-Info value. Raises the daily
        limit error once the allowance is spent."""
        with self.lock:
            self.calls[endpoint] += 1
            self.api_used += 1
            if self.api_used > self.api_limit:
                raise ApiError(403, "REQUEST_LIMIT_EXCEEDED",
                               "TotalRequests Limit exceeded.")
            return f"api-usage={self.api_used}/{self.api_limit}"

    # SOQL ----------------------------------------------------------------------------------

    def query(self, soql: str, *, include_deleted: bool) -> dict[str, Any]:
        try:
            q = parse_soql(soql)
        except Malformed as exc:
            raise ApiError(400, exc.code, str(exc)) from None
        if q.sobject not in SCHEMA:
            raise ApiError(400, "INVALID_TYPE",
                           f"sObject type '{q.sobject}' is not supported.")
        known = {k.lower() for k in SCHEMA[q.sobject]} | {k.lower() for k in _SYSTEM}
        for name in [*q.fields, *q.where_fields]:
            if name.split(".")[0].lower() not in known:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on entity "
                                                     f"'{q.sobject}'.")
        with self.lock:
            rows = [r for r in self.records[q.sobject].values()
                    if (include_deleted or not r["IsDeleted"])
                    and (q.where is None or q.where(r))]
            if q.order_by:
                key = q.order_by
                rows.sort(key=lambda r: (r.get(key) is None, str(r.get(key) or "")))
            if q.limit is not None:
                rows = rows[:q.limit]
            if q.count:
                return {"totalSize": len(rows), "done": True, "records": []}
            out = [self._shape(q.sobject, r, q.fields) for r in rows]
            return self._page(out, include_deleted)

    def more(self, cursor: str, *, include_deleted: bool) -> dict[str, Any]:
        with self.lock:
            if cursor not in self.cursors:
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            rows, _ = self.cursors.pop(cursor)
            return self._page(rows, include_deleted)

    def _page(self, rows: list[dict[str, Any]], include_deleted: bool) -> dict[str, Any]:
        page, rest = rows[:self.page_size], rows[self.page_size:]
        out: dict[str, Any] = {"totalSize": len(rows), "done": not rest, "records": page}
        if rest:
            cursor = sf_id(_PREFIX["Cursor"], next(self._n))
            self.cursors[cursor] = (rest, len(page))
            endpoint = "queryAll" if include_deleted else "query"
            out["nextRecordsUrl"] = f"/services/data/v59.0/{endpoint}/{cursor}-{len(page)}"
        return out

    def _shape(self, sobject: str, r: Mapping[str, Any], fields: Iterable[str]
               ) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {
            "type": sobject, "url": f"/services/data/v59.0/sobjects/{sobject}/{r['Id']}"}}
        for name in fields:
            canon = next((k for k in r if k.lower() == name.split(".")[0].lower()), name)
            out[canon] = r.get(canon)
        return out

    # SOSL ----------------------------------------------------------------------------------

    def search(self, sosl: str) -> dict[str, Any]:
        try:
            s = parse_sosl(sosl)
        except Malformed as exc:
            raise ApiError(400, exc.code, str(exc)) from None
        types = {"EMAIL": ("email",), "PHONE": ("phone",), "NAME": ("string",),
                 "ALL": ("email", "phone", "string", "textarea")}[s.scope]
        hits: list[dict[str, Any]] = []
        with self.lock:
            for sobject, fields in s.returning:
                if sobject not in SCHEMA:
                    raise ApiError(400, "INVALID_TYPE", f"sObject type '{sobject}' is not "
                                                        "supported.")
                searched = [f for f, t in SCHEMA[sobject].items() if t in types]
                if s.scope == "NAME":
                    searched = [f for f in searched if f in ("Name", "FirstName", "LastName")]
                for r in self.records[sobject].values():
                    if r["IsDeleted"]:
                        continue  # the index drops deleted records
                    if any(self._hit(s.scope, term, r.get(f)) for term in s.terms
                           for f in searched):
                        hits.append(self._shape(sobject, r, ["Id", *fields]))
        cap = min(self.search_cap, s.limit or self.search_cap)
        return {"searchRecords": hits[:cap]}  # truncated silently, as the real search is

    @staticmethod
    def _hit(scope: str, term: str, value: Any) -> bool:
        if not isinstance(value, str) or not value:
            return False
        if scope == "PHONE":
            want, have = _digits(term), _digits(value)
            return len(want) >= 7 and (have.endswith(want[-9:]) or want.endswith(have[-9:])
                                       and len(have) >= 7)
        words, text = sosl_tokens(term), sosl_tokens(value)
        n = len(words)
        return n > 0 and any(text[i:i + n] == words for i in range(len(text) - n + 1))

    # writes --------------------------------------------------------------------------------

    def delete(self, ids: list[str]) -> list[dict[str, Any]]:
        """composite/sobjects DELETE: one result per id, by position; failures lack an id."""
        if len(ids) > 200:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit "
                                                     "more than 200 records into this call")
        out = []
        with self.lock:
            for rid in ids:
                error = self._deletable(rid)
                if error:
                    out.append({"success": False, "errors": [
                        {"statusCode": error[0], "message": error[1], "fields": []}]})
                    continue
                r = self.get(rid)
                assert r is not None
                r["IsDeleted"] = True
                r["SystemModstamp"] = r["LastModifiedDate"] = _stamp(_now())
                out.append({"id": rid, "success": True, "errors": []})
        return out

    def _deletable(self, rid: str) -> tuple[str, str] | None:
        r = self.get(rid)
        if r is None:
            return ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if r["IsDeleted"]:
            return ("ENTITY_IS_DELETED", "entity is deleted")
        if rid in self.locked:
            return ("ENTITY_IS_LOCKED", "the record is locked by an approval process")
        if rid in self.undeletable:
            return ("DELETE_FAILED", "Your attempt to delete this record failed because it "
                                     "is referenced")
        return None

    def empty_recycle_bin(self, ids: list[str]) -> list[str | None]:
        """SOAP emptyRecycleBin: purge records that are in the bin; an error code each
        for the others (by position)."""
        out: list[str | None] = []
        with self.lock:
            for rid in ids:
                r = self.get(rid)
                if r is None or not r["IsDeleted"]:
                    out.append("INVALID_ID_FIELD")  # gone, or not in the bin
                    continue
                sobject = self.object_of(rid)
                assert sobject is not None
                del self.records[sobject][rid]
                out.append(None)
        return out

    def update(self, records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """composite/sobjects PATCH: one result per record, by position."""
        if len(records) > 200:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "cannot submit more than 200 records")
        out = []
        with self.lock:
            for rec in records:
                rid = rec.get("id") or rec.get("Id")
                r = self.get(rid) if isinstance(rid, str) else None
                if r is None or r["IsDeleted"] or not isinstance(rid, str):
                    code = "ENTITY_IS_DELETED" if r else "INVALID_CROSS_REFERENCE_KEY"
                    out.append({"success": False, "errors": [
                        {"statusCode": code, "message": code.lower(), "fields": []}]})
                    continue
                sobject = self.object_of(rid)
                assert sobject is not None
                problem = self._check_values(sobject, rec, r)
                if problem:
                    out.append({"success": False, "errors": [problem]})
                    continue
                for k, v in rec.items():
                    if k not in ("id", "Id", "attributes"):
                        r[k] = v
                self._derive(sobject, r)
                r["SystemModstamp"] = r["LastModifiedDate"] = _stamp(_now())
                out.append({"id": rid, "success": True, "errors": []})
        return out

    def insert(self, records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """composite/sobjects POST: creates, one result per record."""
        out = []
        with self.lock:
            for rec in records:
                sobject = (rec.get("attributes") or {}).get("type")
                if sobject not in SCHEMA:
                    out.append({"success": False, "errors": [
                        {"statusCode": "INVALID_TYPE", "message": "bad type", "fields": []}]})
                    continue
                values = {k: v for k, v in rec.items() if k != "attributes"}
                problem = self._check_values(sobject, values, None)
                if problem:
                    out.append({"success": False, "errors": [problem]})
                    continue
                out.append({"id": self.create(sobject, values), "success": True,
                            "errors": []})
        return out

    def _check_values(self, sobject: str, values: Mapping[str, Any],
                      current: Mapping[str, Any] | None) -> dict[str, Any] | None:
        for k, v in values.items():
            if k in ("id", "Id", "attributes"):
                continue
            kind = SCHEMA[sobject].get(k)
            if kind is None or k in _READ_ONLY:
                return {"statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                        "message": f"Unable to create/update fields: {k}", "fields": [k]}
            if kind == "email" and v not in (None, "") and not re.fullmatch(
                    r"[^@\s]+@[^@\s]+\.[^@\s]+", str(v)):
                return {"statusCode": "INVALID_EMAIL_ADDRESS",
                        "message": f"{k}: invalid email address", "fields": [k]}
            if kind == "boolean" and not isinstance(v, bool):
                return {"statusCode": "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        "message": f"{k}: value not of required type", "fields": [k]}
        for req in _REQUIRED.get(sobject, ()):
            value = values[req] if req in values else (current or {}).get(req)
            if value in (None, ""):
                return {"statusCode": "REQUIRED_FIELD_MISSING",
                        "message": f"Required fields are missing: [{req}]", "fields": [req]}
        return None

    @staticmethod
    def _derive(sobject: str, r: dict[str, Any]) -> None:
        if sobject in ("Contact", "Lead", "Individual"):
            r["Name"] = " ".join(p for p in (r.get("FirstName"), r.get("LastName")) if p)

    # Bulk API 2.0 --------------------------------------------------------------------------

    def job_create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        op, sobject = body.get("operation"), body.get("object")
        if op not in ("delete", "hardDelete"):
            raise ApiError(400, "InvalidJob", f"unsupported operation {op}")
        if sobject not in SCHEMA:
            raise ApiError(400, "InvalidJob", f"Entity '{sobject}' is not supported")
        if op == "hardDelete" and not self.has_hard_delete():
            raise ApiError(400, "FEATURENOTENABLED",
                           "Hard delete operation requires the Bulk API Hard Delete "
                           "permission")
        with self.lock:
            job = Job(sf_id(_PREFIX["Job"], next(self._n)), sobject, op, self.user_id,
                      created=_stamp(_now()))
            self.jobs[job.id] = job
            return job.info()

    def has_hard_delete(self) -> bool:
        return any(a["AssigneeId"] == self.user_id
                   and a["PermissionSet"].get("PermissionsBulkApiHardDelete")
                   for a in self.records["PermissionSetAssignment"].values())

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def job_upload(self, job_id: str, data: str) -> None:
        with self.lock:
            job = self.job(job_id)
            if job.state != "Open":
                raise ApiError(409, "INVALIDJOBSTATE", "Job is not open for uploads")
            rows = list(csv.reader(io.StringIO(data)))
            if not rows or [c.strip() for c in rows[0]] != ["Id"]:
                raise ApiError(400, "INVALIDDATA", "CSV header must be exactly: Id")
            job.ids.extend(r[0] for r in rows[1:] if r)

    def job_patch(self, job_id: str, state: str) -> dict[str, Any]:
        with self.lock:
            job = self.job(job_id)
            if state == "UploadComplete" and job.state == "Open":
                job.state = "UploadComplete"
            elif state == "Aborted" and job.state in ("Open", "UploadComplete", "InProgress"):
                job.state = "Aborted"
            elif state != job.state:
                raise ApiError(409, "INVALIDJOBSTATE", f"Cannot move job to {state}")
            return job.info()

    def job_read(self, job_id: str) -> dict[str, Any]:
        """A read of the job: it advances one state (UploadComplete -> InProgress ->
        JobComplete), so a job finishes only when someone polls it."""
        with self.lock:
            job = self.job(job_id)
            if job.state == "UploadComplete":
                job.state = "InProgress"
            elif job.state == "InProgress":
                job.results = []
                for rid in job.ids:
                    error = self._deletable(rid)
                    if error:
                        job.results.append((rid, f"{error[0]}:{error[1]}:--"))
                        continue
                    sobject = self.object_of(rid)
                    if sobject != job.object:
                        job.results.append((rid, "INVALID_ID_FIELD:invalid id for entity:--"))
                        continue
                    if job.operation == "hardDelete":
                        del self.records[sobject][rid]
                    else:
                        r = self.records[sobject][rid]
                        r["IsDeleted"] = True
                        r["SystemModstamp"] = _stamp(_now())
                    job.results.append((rid, None))
                job.state = "JobComplete"
            return job.info()

    def job_results(self, job_id: str, kind: str) -> str:
        with self.lock:
            job = self.job(job_id)
            if job.state != "JobComplete":
                raise ApiError(400, "INVALIDJOBSTATE", "results are available when the job "
                                                       "is complete")
            buf = io.StringIO()
            w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
            if kind == "successfulResults":
                w.writerow(["sf__Id", "sf__Created", "Id"])
                for rid, error in job.results:
                    if error is None:
                        w.writerow([rid, "false", rid])
            else:
                w.writerow(["sf__Id", "sf__Error", "Id"])
                for rid, error in job.results:
                    if error is not None:
                        w.writerow(["", error, rid])
            return buf.getvalue()

    # describe ------------------------------------------------------------------------------

    def describe_global(self) -> dict[str, Any]:
        return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
            {"name": o, "label": o, "queryable": True, "searchable": True,
             "deletable": o not in ("User",), "updateable": True, "custom": False}
            for o in SCHEMA]}

    def describe(self, sobject: str) -> dict[str, Any]:
        if sobject not in SCHEMA:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        fields = {**_SYSTEM, **SCHEMA[sobject]}
        return {"name": sobject, "label": sobject, "queryable": True, "deletable": True,
                "fields": [{"name": f, "type": t, "label": f, "nillable": f not in
                            ("Id", "IsDeleted") and f not in _REQUIRED.get(sobject, ()),
                            "updateable": f not in _READ_ONLY, "createable": f not in
                            _READ_ONLY, "length": 255 if t in ("string", "email") else 0}
                           for f, t in fields.items() if t != "relationship"]}

