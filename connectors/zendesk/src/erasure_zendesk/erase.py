"""delete and poll: tickets deleted then permanently deleted as jobs, users soft-deleted then
permanently deleted and read back scrubbed, kept tickets redacted.

The tickets the subjects of a call requested go into ``DELETE /tickets/destroy_many`` jobs
(see :mod:`.jobs`); their items answer PENDING with the jobs as handle. ``poll`` reads every
job status of the call in one request; tickets a completed job deleted go into
``DELETE /deleted_tickets/destroy_many`` jobs (permanent), and when a subject's tickets are
all gone their user is soft-deleted, permanently deleted and read back scrubbed. A job can
fail single tickets inside a ``completed`` status: those items fail, and the subject's
user is kept so that a retry can still find the tickets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erasure import Finding, ItemOutcome, ItemStatus, current_call

from .client import NotFound, ZendeskClient
from .jobs import Handle, Jobs, digest
from .redact import Redactor
from .refs import TICKET, USER, ref_id
from .settings import ZendeskSettings

__all__ = ["Eraser", "subject_authors", "subject_values"]

S = ItemStatus


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


@dataclass
class _Subject:
    """One subject's part of a call."""

    key: str
    uids: set[int] = field(default_factory=set)
    #: findings (delete) or pending outcomes (poll)
    tickets: list[Any] = field(default_factory=list)
    users: list[Any] = field(default_factory=list)
    holder: int = 0


class Eraser:
    """Deletes and redacts the findings of a batch of subjects."""

    def __init__(self, client: ZendeskClient, settings: ZendeskSettings,
                 state_dir: Callable[[], Path | None]) -> None:
        self.client = client
        self.settings = settings
        self.redactor = Redactor(client)
        self.jobs = Jobs(client, state_dir)

    # delete -----------------------------------------------------------------------------

    def delete(self, findings: Sequence[Finding]) -> list[ItemOutcome]:
        authors, values = subject_authors(findings), subject_values(findings)
        users = self._users({u for ids in authors.values() for u in ids})
        subjects: dict[str, _Subject] = {}
        out: list[ItemOutcome] = []
        for f in findings:
            s = subjects.setdefault(f.subject, _Subject(f.subject, authors.get(f.subject,
                                                                                 set())))
            if f.kind == USER:
                s.users.append(f)
            elif f.kind == TICKET and self.settings.requested_tickets == "delete":
                s.tickets.append(f)
            else:  # kept: someone else's ticket, or the subject's own kept by policy
                changed = self.redactor.redact_ticket(ref_id(f), s.uids, values.get(f.subject,
                                                                                     []))
                out.append(ItemOutcome(f, S.DONE if changed else S.ALREADY_DONE))
        for s in subjects.values():
            s.holder = min((u for u in s.uids if users.get(u, {}).get("active")), default=0)
        handles = self._submit([s for s in subjects.values() if s.tickets], users)
        gone: list[Finding] = []
        for s in subjects.values():
            for f in s.tickets:
                h = handles.get((s.key, f.ref))
                out.append(ItemOutcome(f, S.PENDING, handle=str(h)) if h
                           else ItemOutcome(f, S.ALREADY_DONE))
            waiting = [h for f in s.tickets if (h := handles.get((s.key, f.ref)))]
            if waiting:
                out += [ItemOutcome(f, S.PENDING, handle=str(waiting[0])) for f in s.users]
            else:
                gone += s.users
        return out + self._delete_users(gone)

    def _submit(self, subjects: list[_Subject], users: dict[int, dict[str, Any]]
                ) -> dict[tuple[str, str], Handle]:
        """The handle of every ticket still to delete: jobs found in the journal, or
        submitted now for all subjects at once."""
        ctx = current_call()
        handles: dict[tuple[str, str], Handle] = {}
        fresh: list[tuple[_Subject, str]] = []
        for s in subjects:
            key_digest = digest(ctx.idempotency_key(s.key))
            found = {phase: jobs for phase in ("delete", "purge")
                     if (jobs := self.jobs.journalled(users.get(s.holder), phase,
                                                      key_digest))}
            if found:  # submitted before the ledger heard of it: the same jobs again
                phase, jobs = next(iter(found.items()))
                for f in s.tickets:
                    handles[(s.key, f.ref)] = Handle(phase, jobs, s.holder)
            else:
                fresh.append((s, key_digest))
        ids = sorted({ref_id(f) for s, _ in fresh for f in s.tickets})
        live = set(self._live_tickets(ids))
        deleted = self._deleted_tickets() if set(ids) - live else set()
        for phase, present in (("delete", live), ("purge", deleted - live)):
            wanted = {s.key: sorted(ref_id(f) for f in s.tickets
                                    if ref_id(f) in present) for s, _ in fresh}
            submitted = self.jobs.submit(phase, {k: v for k, v in wanted.items() if v})
            for s, key_digest in fresh:
                if s.key not in submitted:
                    continue
                self.jobs.journal(s.holder, phase, key_digest, submitted[s.key])
                for f in s.tickets:
                    if ref_id(f) in present:
                        handles[(s.key, f.ref)] = Handle(phase, submitted[s.key], s.holder)
        return handles

    def _users(self, uids: set[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        ordered = sorted(uids - {0})
        for start in range(0, len(ordered), 100):
            ids = ",".join(map(str, ordered[start:start + 100]))
            body = self.client.get("users/show_many", "read users", ids=ids)
            out.update({int(u["id"]): u for u in body.get("users") or []})
        return out

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

    def _delete_users(self, findings: list[Finding]) -> list[ItemOutcome]:
        """Soft delete, permanent delete, then one read back of them all: DONE,
        ALREADY_DONE, or FAILED if a user is not scrubbed."""
        changed: set[int] = set()
        for uid in sorted({ref_id(f) for f in findings}):
            for path, what in ((f"users/{uid}", "delete user"),
                               (f"deleted_users/{uid}", "permanently delete user")):
                try:
                    self.client.delete(path, what)
                    changed.add(uid)
                except NotFound:  # done before (or by a write that answered 503 after
                    pass          # committing): the read back below decides
        back = self._users({ref_id(f) for f in findings})
        out = []
        for f in findings:
            user = back.get(ref_id(f))
            if user is not None and (user.get("active") or user.get("email")
                                     or user.get("phone")):
                out.append(ItemOutcome(f, S.FAILED,
                                       error="user not scrubbed after permanent deletion"))
            else:
                out.append(ItemOutcome(f, S.DONE if ref_id(f) in changed else S.ALREADY_DONE))
        return out

    # poll -------------------------------------------------------------------------------

    def poll(self, pending: Sequence[ItemOutcome]) -> list[ItemOutcome]:
        handles = {id(o): Handle.parse(o.handle) for o in pending}
        statuses = self.jobs.statuses({j for h in handles.values() if h for j in h.jobs})
        subjects: dict[str, _Subject] = {}
        for o in pending:
            s = subjects.setdefault(o.finding.subject, _Subject(o.finding.subject))
            (s.users if o.finding.kind == USER else s.tickets).append(o)
            h = handles[id(o)]
            s.holder = h.holder if h else s.holder
        users = self._users({s.holder for s in subjects.values()})
        out: list[ItemOutcome] = []
        purge: dict[str, list[tuple[Finding, Handle]]] = {}
        state: dict[str, str] = {}  # subject key -> "failed" | "waiting" | "gone"
        for s in subjects.values():
            results = [self._ticket_result(o, handles[id(o)], statuses)
                       for o in s.tickets]
            for o, (status, h) in zip(s.tickets, results, strict=True):
                if status == "purge" and h is not None:
                    purge.setdefault(s.key, []).append((o.finding, h))
                elif status == "pending":
                    out.append(ItemOutcome(o.finding, S.PENDING, handle=str(h)))
                elif status == "done":
                    out.append(ItemOutcome(o.finding, S.DONE))
                else:
                    out.append(ItemOutcome(o.finding, S.FAILED, error=status))
            failed = any(r[0] not in ("purge", "pending", "done") for r in results)
            waiting = any(r[0] in ("purge", "pending") for r in results)
            state[s.key] = "failed" if failed else "waiting" if waiting else "gone"
        new = self._purge(purge, subjects, users)
        for key, items in purge.items():
            out += [ItemOutcome(f, S.PENDING, handle=str(new[key])) for f, _ in items]
        gone: list[Finding] = []
        for s in subjects.values():
            for o in s.users:
                if state[s.key] == "failed":
                    out.append(ItemOutcome(o.finding, S.FAILED, error="kept: a ticket of "
                                           "the user could not be deleted"))
                elif state[s.key] == "waiting":
                    handle = new.get(s.key) or next(
                        (x.handle for x in out if x.finding.subject == s.key and x.handle),
                        o.handle)
                    out.append(ItemOutcome(o.finding, S.PENDING, handle=str(handle)))
                else:
                    gone.append(o.finding)
        return out + self._delete_users(gone)

    def _ticket_result(self, o: ItemOutcome, h: Handle | None,
                       statuses: dict[str, dict[str, Any]]) -> tuple[str, Handle | None]:
        """("pending" | "purge" | "done" | an error, handle) of one ticket item."""
        if h is None:
            return "unknown handle", None
        known = [statuses.get(j) for j in h.jobs]
        jobs = [j for j in known if j is not None]
        if len(jobs) < len(known):
            return "zendesk job status expired before the ticket was gone", h
        if any(j.get("status") not in ("completed", "failed") for j in jobs):
            return "pending", h
        tid = ref_id(o.finding)
        result = next((r for j in jobs for r in j.get("results") or []
                       if r.get("id") == tid), None)
        if result is None or not (result.get("success")
                                  or result.get("error") == "RecordNotFound"):
            return "zendesk job failed for the ticket", h
        return ("purge" if h.phase == "delete" else "done"), h

    def _purge(self, purge: dict[str, list[tuple[Finding, Handle]]],
               subjects: dict[str, _Subject], users: dict[int, dict[str, Any]]
               ) -> dict[str, Handle]:
        """Permanent deletion jobs for tickets their deletion jobs removed: found in the
        journal, or submitted now for every subject at once."""
        out: dict[str, Handle] = {}
        fresh: dict[str, list[int]] = {}
        digests: dict[str, str] = {}
        for key, items in purge.items():
            holder = subjects[key].holder
            digests[key] = digest("+".join(sorted({j for _, h in items for j in h.jobs})))
            jobs = self.jobs.journalled(users.get(holder), "purge", digests[key])
            if jobs:
                out[key] = Handle("purge", jobs, holder)
            else:
                fresh[key] = sorted(ref_id(f) for f, _ in items)
        for key, jobs in self.jobs.submit("purge", fresh).items():
            holder = subjects[key].holder
            live = holder if users.get(holder, {}).get("active") else 0
            self.jobs.journal(live, "purge", digests[key], jobs)
            out[key] = Handle("purge", jobs, holder)
        return out
