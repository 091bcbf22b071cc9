"""delete and poll: tickets deleted then permanently deleted as jobs, users soft-deleted then
permanently deleted and read back scrubbed, kept tickets redacted.

Per subject, the tickets they requested go into one ``DELETE /tickets/destroy_many`` job;
its items answer PENDING with handle ``delete:<job id>:<user id>``. ``poll`` reads the job
statuses (one request for all of them); a completed delete job is followed by a
``DELETE /deleted_tickets/destroy_many`` job (handle ``purge:...``), and when that completes
the subject's user is deleted for good. A job can fail single tickets inside a
``completed`` status: those items fail, and the user is kept so the request can be retried.

Zendesk takes no idempotency key for these jobs, so the connector journals each job on the
subject's user as a tag ``erasure-d-<digest of the call's idempotency key>-<job id>``
before answering: a run killed after the submit and before the ledger's write finds the tag
on its next attempt and answers the same job instead of submitting a second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from erasure import Finding, ItemOutcome, ItemStatus, current_call

from .client import NotFound, ZendeskClient
from .redact import Redactor
from .refs import MENTION, PARTICIPATION, TICKET, USER, ref_id
from .settings import ZendeskSettings

__all__ = ["Eraser", "subject_authors", "subject_values"]

S = ItemStatus
_SCRUBBED_NAME = "Permanently deleted user"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def subject_authors(findings: Sequence[Finding]) -> dict[str, set[int]]:
    """Per subject key, the user ids found for it."""
    out: dict[str, set[int]] = {}
    for f in findings:
        if f.kind == USER:
            out.setdefault(f.subject, set()).add(ref_id(f))
    return out


def subject_values(findings: Sequence[Finding]) -> dict[str, list[str]]:
    """Per subject key, the emails and phones that matched (and those seen on their user):
    the values redacted where other people quote them."""
    out: dict[str, set[str]] = {}
    for f in findings:
        idents = f.matched + (f.related if f.kind == USER else ())
        out.setdefault(f.subject, set()).update(
            i.value for i in idents if i.type.value in ("email", "phone"))
    return {k: sorted(v) for k, v in out.items()}


class Eraser:
    """Deletes and redacts the findings of a batch of subjects."""

    def __init__(self, client: ZendeskClient, settings: ZendeskSettings) -> None:
        self.client = client
        self.settings = settings
        self.redactor = Redactor(client)

    # delete -----------------------------------------------------------------------------

    def delete(self, findings: Sequence[Finding]) -> list[ItemOutcome]:
        authors, values = subject_authors(findings), subject_values(findings)
        by_subject: dict[str, list[Finding]] = {}
        for f in findings:
            by_subject.setdefault(f.subject, []).append(f)
        users = self._users({uid for ids in authors.values() for uid in ids})
        out: list[ItemOutcome] = []
        for key, fs in by_subject.items():
            out += self._delete_subject(key, fs, authors.get(key, set()), values.get(key, []),
                                        users)
        return out

    def _delete_subject(self, key: str, fs: list[Finding], uids: set[int], values: list[str],
                        users: dict[int, dict[str, Any]]) -> list[ItemOutcome]:
        out: list[ItemOutcome] = []
        doomed: list[Finding] = []
        for f in fs:
            if f.kind == TICKET and self.settings.requested_tickets == "delete":
                doomed.append(f)
            elif f.kind in (TICKET, PARTICIPATION, MENTION):
                changed = self.redactor.redact_ticket(ref_id(f), uids, values)
                out.append(ItemOutcome(f, S.DONE if changed else S.ALREADY_DONE))
        user_fs = [f for f in fs if f.kind == USER]
        handle = self._submit(key, doomed, uids, users) if doomed else None
        if handle is None:
            out += [ItemOutcome(f, S.ALREADY_DONE) for f in doomed]
            out += [self._delete_user(f) for f in user_fs]
        else:
            out += [ItemOutcome(f, S.PENDING, handle=handle) for f in doomed + user_fs]
        return out

    def _users(self, uids: set[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        ordered = sorted(uids)
        for start in range(0, len(ordered), 100):
            ids = ",".join(map(str, ordered[start:start + 100]))
            body = self.client.get("users/show_many", "read users", ids=ids)
            out.update({int(u["id"]): u for u in body.get("users") or []})
        return out

    def _submit(self, key: str, doomed: list[Finding], uids: set[int],
                users: dict[int, dict[str, Any]]) -> str | None:
        """The handle of the job deleting ``doomed`` (submitted now, or found in the
        journal); None when every ticket is already gone for good."""
        journal = _digest(current_call().idempotency_key(key))
        holder = min((u for u in uids if users.get(u, {}).get("active")), default=0)
        for uid in sorted(uids):
            for tag in users.get(uid, {}).get("tags") or []:
                for phase in ("d", "p"):
                    prefix = f"erasure-{phase}-{journal}-"
                    if tag.startswith(prefix):
                        name = "delete" if phase == "d" else "purge"
                        return f"{name}:{tag[len(prefix):]}:{uid}"
        ids = sorted(ref_id(f) for f in doomed)
        live = self._live_tickets(ids)
        if live:
            phase, targets = "d", live
        else:
            phase, targets = "p", sorted(set(ids) & self._deleted_tickets())
            if not targets:
                return None
        path = "tickets/destroy_many" if phase == "d" else "deleted_tickets/destroy_many"
        body = self.client.delete(path, "submit ticket deletion",
                                  ids=",".join(map(str, targets)))
        job = str(body["job_status"]["id"])
        if holder:
            self.client.put(f"users/{holder}/tags", "journal deletion job",
                            {"tags": [f"erasure-{phase}-{journal}-{job}"]})
        return f"{'delete' if phase == 'd' else 'purge'}:{job}:{holder}"

    def _live_tickets(self, ids: list[int]) -> list[int]:
        live: list[int] = []
        for start in range(0, len(ids), 100):
            body = self.client.get("tickets/show_many", "read tickets",
                                   ids=",".join(map(str, ids[start:start + 100])))
            live += [int(t["id"]) for t in body.get("tickets") or []]
        return sorted(live)

    def _deleted_tickets(self) -> set[int]:
        return {int(t["id"]) for page in self.client.pages(
            "deleted_tickets", "deleted_tickets", "list deleted tickets") for t in page}

    def _delete_user(self, f: Finding) -> ItemOutcome:
        """Soft delete, permanent delete, read back: DONE, ALREADY_DONE or FAILED."""
        uid = ref_id(f)
        changed = False
        for path, what in ((f"users/{uid}", "delete user"),
                           (f"deleted_users/{uid}", "permanently delete user")):
            try:
                self.client.delete(path, what)
                changed = True
            except NotFound:  # done before (or by a write that answered 503 after commit)
                pass
        if not self._scrubbed(uid):
            return ItemOutcome(f, S.FAILED, error="user not scrubbed after permanent deletion")
        return ItemOutcome(f, S.DONE if changed else S.ALREADY_DONE)

    def _scrubbed(self, uid: int) -> bool:
        try:
            user = self.client.get(f"users/{uid}", "read user back")["user"]
        except NotFound:
            return True
        if user.get("active") or user.get("email") or user.get("phone"):
            return False
        try:
            idents = self.client.get(f"users/{uid}/identities", "read identities back")
        except NotFound:
            return True
        return not idents.get("identities")

    # poll -------------------------------------------------------------------------------

    def poll(self, pending: Sequence[ItemOutcome]) -> list[ItemOutcome]:
        groups: dict[str, list[ItemOutcome]] = {}
        for o in pending:
            groups.setdefault(o.handle or "", []).append(o)
        jobs = self._jobs({h.split(":")[1] for h in groups if h.count(":") == 2})
        users = self._users({int(h.split(":")[2]) for h in groups
                             if h.count(":") == 2 and h.split(":")[2].isdigit()} - {0})
        out: list[ItemOutcome] = []
        for handle, group in groups.items():
            out += self._poll_group(handle, group, jobs, users)
        return out

    def _jobs(self, ids: set[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        ordered = sorted(ids)
        for start in range(0, len(ordered), 100):
            body = self.client.get("job_statuses/show_many", "read job statuses",
                                   ids=",".join(ordered[start:start + 100]))
            out.update({str(j["id"]): j for j in body.get("job_statuses") or []})
        return out

    def _poll_group(self, handle: str, group: list[ItemOutcome],
                    jobs: dict[str, dict[str, Any]], users: dict[int, dict[str, Any]]
                    ) -> list[ItemOutcome]:
        try:
            phase, job_id, holder = handle.split(":")
            uid = int(holder)
        except ValueError:
            return [ItemOutcome(o.finding, S.FAILED, error="unknown handle") for o in group]
        tickets = [o.finding for o in group if o.finding.kind != USER]
        user_fs = [o.finding for o in group if o.finding.kind == USER]
        job = jobs.get(job_id)
        if job is None:  # expired or never seen: the tickets' state is the answer
            return self._lost(group)
        if job.get("status") not in ("completed", "failed"):
            return [ItemOutcome(o.finding, S.PENDING, handle=handle) for o in group]
        results = {int(r["id"]): r for r in job.get("results") or [] if "id" in r}
        ok: list[Finding] = []
        failed: list[Finding] = []
        for f in tickets:
            r = results.get(ref_id(f), {})
            good = r.get("success") or r.get("error") == "RecordNotFound"
            (ok if good and job.get("status") == "completed" else failed).append(f)
        out = [ItemOutcome(f, S.FAILED, error="zendesk job failed for the ticket")
               for f in failed]
        # a user whose ticket could not be deleted is kept: a retry finds the ticket by it
        kept = [ItemOutcome(f, S.FAILED, error="kept: a ticket of the user could not be "
                            "deleted") for f in user_fs] if failed else []
        if phase == "delete" and ok:
            new = self._purge(job_id, [ref_id(f) for f in ok], uid, users)
            waiting = ok + ([] if failed else user_fs)
            return out + kept + [ItemOutcome(f, S.PENDING, handle=new) for f in waiting]
        out += [ItemOutcome(f, S.DONE) for f in ok]
        if failed:
            return out + kept
        return out + [self._delete_user(f) for f in user_fs]

    def _purge(self, delete_job: str, ids: list[int], uid: int,
               users: dict[int, dict[str, Any]]) -> str:
        """Submit (or find in the journal) the permanent deletion after ``delete_job``."""
        journal = f"erasure-p-{_digest(delete_job)}-"
        for tag in users.get(uid, {}).get("tags") or []:
            if tag.startswith(journal):
                return f"purge:{tag[len(journal):]}:{uid}"
        body = self.client.delete("deleted_tickets/destroy_many", "submit permanent deletion",
                                  ids=",".join(map(str, sorted(ids))))
        job = str(body["job_status"]["id"])
        if uid and users.get(uid, {}).get("active"):
            self.client.put(f"users/{uid}/tags", "journal deletion job",
                            {"tags": [f"{journal}{job}"]})
        return f"purge:{job}:{uid}"

    def _lost(self, group: list[ItemOutcome]) -> list[ItemOutcome]:
        tickets = [o.finding for o in group if o.finding.kind != USER]
        ids = sorted(ref_id(f) for f in tickets)
        left = set(self._live_tickets(ids)) | (self._deleted_tickets() if ids else set())
        out = [ItemOutcome(f, S.FAILED, transient=True,
                           error="zendesk job status expired before the ticket was gone")
               if ref_id(f) in left else ItemOutcome(f, S.DONE) for f in tickets]
        users = [o.finding for o in group if o.finding.kind == USER]
        if left:
            return out + [ItemOutcome(f, S.FAILED, transient=True,
                                      error="kept until its tickets are gone") for f in users]
        return out + [self._delete_user(f) for f in users]
