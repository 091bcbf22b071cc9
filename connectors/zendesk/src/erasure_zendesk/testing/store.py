"""The fake Zendesk account's data and the rules the real service keeps (no HTTP here).

- Users: ``DELETE /users/{id}`` is a soft delete that keeps every field (the user reads back
  ``active: false``, leaves search, and shows in ``/deleted_users``); only
  ``DELETE /deleted_users/{id}`` scrubs it, and only a soft-deleted user can be.
- Identities: emails, phone numbers and social handles of a user; ``user.email`` and
  ``user.phone`` mirror the primary ones; a primary email cannot be deleted.
- Tickets: bulk deletes are jobs (``job_statuses``) that run when polled; a deleted ticket
  leaves search and ``show_many`` but keeps its data in ``/deleted_tickets`` until a second
  job deletes it permanently (and only a deleted ticket can be). A job can fail for single
  tickets inside a ``completed`` status. Archived tickets are in search and readable by id,
  never in a user's ticket lists, and cannot be updated.
- Comments: redacted with ``comment_redactions`` (closed and archived tickets too: the
  older per-comment ``redact`` refuses closed ones); attachments removed with it. A ticket
  update with a ``comment`` adds one (``public`` true unless false), its files given by
  the tokens of ``POST /uploads`` (a token is used once; an unknown one is refused).
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .searching import Searching

__all__ = ["ApiError", "Store"]

REDACTED = "▇"
_REDACT = re.compile(r"<redact>(.*?)</redact>", re.S)
_TAGS = re.compile(r"<[^>]+>")
_STAMP = "2026-01-15T10:00:00Z"
IDENTITY_TYPES = ("email", "phone_number", "twitter", "facebook", "google", "sdk")


class ApiError(Exception):
    """An error answer: HTTP status and the JSON body Zendesk sends."""

    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error}
        if description:
            self.body["description"] = description


def not_found() -> ApiError:
    return ApiError(404, "RecordNotFound", "Not found")


@dataclass
class Job:
    """A background job: runs when it has been polled ``polls`` times."""

    id: str
    action: str  # "delete" | "purge"
    ticket_ids: list[int]
    polls_left: int
    status: str = "queued"
    results: list[dict[str, Any]] | None = None

    def json(self, base: str) -> dict[str, Any]:
        done = self.status == "completed"
        return {"id": self.id, "url": f"{base}/job_statuses/{self.id}.json",
                "job_type": "ThrottledJob", "total": len(self.ticket_ids),
                "progress": len(self.ticket_ids) if done else None, "status": self.status,
                "message": "Completed at 2026-01-15 10:00:00 +0000" if done else None,
                "results": self.results}


@dataclass
class Store(Searching):
    """Everything in the fake account; every method is one API operation's effect."""

    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    identities: dict[int, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    #: identity ids per user (an index: the bench's accounts hold thousands)
    by_user: dict[int, set[int]] = field(default_factory=dict)
    #: lower-cased email -> identity id (Zendesk keeps emails unique)
    by_email: dict[str, int] = field(default_factory=dict)
    user_fields: list[dict[str, Any]] = field(default_factory=list)
    ticket_fields: list[dict[str, Any]] = field(default_factory=list)
    #: polls a job needs before it runs (queued -> working -> completed)
    job_polls: int = 2
    #: ticket id -> job action ("delete" or "purge") that fails for it, once, inside a
    #: ``completed`` job status
    failing_tickets: dict[int, str] = field(default_factory=dict)
    #: upload token -> the attachments uploaded under it, not yet used by a comment
    uploads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: attachment id -> the uploaded file's bytes
    files: dict[int, bytes] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: the search index as of the last :meth:`reindex` (``lag_search``), else None: search
    #: sees every write at once
    index: Store | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1001))

    def next_id(self) -> int:
        return next(self._ids)

    def lag_search(self) -> None:
        """From now on search answers from a copy of the data taken now and at every
        :meth:`reindex`, as Zendesk's index lags behind writes."""
        self.reindex()

    def reindex(self) -> None:
        """The search index catches up with every write so far."""
        import copy

        with self.lock:
            users, identities, tickets, comments, by_user, by_email = copy.deepcopy((
                self.users, self.identities, self.tickets, self.comments, self.by_user,
                self.by_email))
            self.index = Store(users=users, identities=identities, tickets=tickets,
                               comments=comments, by_user=by_user, by_email=by_email)

    def searched(self) -> Store:
        """The data search answers from: the lagging index, or the store itself."""
        return self.index if self.index is not None else self

    # seeding (what agents and customers did before the test) -------------------------

    def add_user(self, name: str, email: str | None = None, phone: str | None = None, *,
                 extra_emails: Iterable[str] = (), extra_phones: Iterable[str] = (),
                 role: str = "end-user", tags: Iterable[str] = (),
                 user_fields: dict[str, Any] | None = None, notes: str = "",
                 socials: Iterable[tuple[str, str]] = ()) -> int:
        """A user with a primary email/phone and more identities; returns its id."""
        with self.lock:
            uid = self.next_id()
            self.users[uid] = {
                "id": uid, "name": name, "email": None, "phone": None, "role": role,
                "active": True, "suspended": False, "tags": sorted(set(tags)),
                "user_fields": dict(user_fields or {}), "notes": notes, "details": "",
                "external_id": None, "verified": True, "created_at": _STAMP,
                "updated_at": _STAMP, "state": "live"}
            for n, value in enumerate([e for e in [email] if e] + list(extra_emails)):
                self._identity(uid, "email", value, primary=n == 0)
            for n, value in enumerate([p for p in [phone] if p] + list(extra_phones)):
                self._identity(uid, "phone_number", value, primary=n == 0)
            for kind, value in socials:
                self._identity(uid, kind, value, primary=False)
            return uid

    def _identity(self, uid: int, kind: str, value: str, *, primary: bool) -> dict[str, Any]:
        if kind not in IDENTITY_TYPES:
            raise ApiError(422, "RecordInvalid", "unknown identity type")
        if kind == "email":
            if value.lower() in self.by_email:
                raise ApiError(422, "RecordInvalid", "Email is already being used")
        iid = self.next_id()
        ident = {"id": iid, "user_id": uid, "type": kind, "value": value,
                 "primary": primary, "verified": True, "created_at": _STAMP,
                 "updated_at": _STAMP}
        self.identities[iid] = ident
        self.by_user.setdefault(uid, set()).add(iid)
        if kind == "email":
            self.by_email[value.lower()] = iid
        self._mirror(uid)
        return ident

    def _mirror(self, uid: int) -> None:
        user = self.users[uid]
        for kind, attr in (("email", "email"), ("phone_number", "phone")):
            primary = [i for i in self.idents(uid) if i["type"] == kind and i["primary"]]
            user[attr] = primary[0]["value"] if primary else None

    def add_ticket(self, requester: int, subject: str, comments: Iterable[tuple[int, str]], *,
                   assignee: int | None = None, ccs: Iterable[int] = (),
                   followers: Iterable[int] = (), status: str = "open",
                   archived: bool = False, tags: Iterable[str] = (),
                   attachments: dict[int, list[str]] | None = None,
                   custom_fields: dict[int, Any] | None = None) -> int:
        """A ticket and its comments ``(author id, text)``; ``attachments`` maps a comment's
        index to file names. Returns the ticket id."""
        with self.lock:
            tid = self.next_id()
            listed = list(comments)
            self.tickets[tid] = {
                "id": tid, "subject": subject, "raw_subject": subject, "description": "",
                "status": "closed" if archived else status, "requester_id": requester,
                "submitter_id": requester, "assignee_id": assignee,
                "collaborator_ids": sorted(set(ccs) | set(followers)),
                "email_cc_ids": sorted(set(ccs)), "follower_ids": sorted(set(followers)),
                "tags": sorted(set(tags)),
                "custom_fields": [{"id": k, "value": v}
                                  for k, v in (custom_fields or {}).items()],
                "created_at": _STAMP, "updated_at": _STAMP, "is_public": True,
                "via": {"channel": "email"}, "state": "live", "archived": archived}
            self.comments[tid] = []
            for n, (author, text) in enumerate(listed):
                cid = self.next_id()
                files = (attachments or {}).get(n, [])
                self.comments[tid].append({
                    "id": cid, "type": "Comment", "author_id": author, "body": text,
                    "html_body": f"<div class=\"zd-comment\"><p>{text}</p></div>",
                    "plain_body": text, "public": True, "created_at": _STAMP,
                    "attachments": [self._attachment(name) for name in files]})
            self._describe(tid)
            return tid

    def idents(self, uid: int) -> list[dict[str, Any]]:
        """The identities of one user (live objects)."""
        return [self.identities[i] for i in sorted(self.by_user.get(uid, ()))]

    def _forget(self, iid: int) -> None:
        ident = self.identities.pop(iid)
        self.by_user.get(ident["user_id"], set()).discard(iid)
        if ident["type"] == "email":
            self.by_email.pop(ident["value"].lower(), None)

    def _attachment(self, name: str) -> dict[str, Any]:
        aid = self.next_id()
        return {"id": aid, "file_name": name, "content_type": "application/octet-stream",
                "content_url": f"https://fake.zendesk.invalid/attachments/token/{aid}/"
                               f"?name={name}", "size": 1024, "inline": False}

    def _describe(self, tid: int) -> None:
        comments = self.comments[tid]
        self.tickets[tid]["description"] = comments[0]["plain_body"] if comments else ""

    # reads ------------------------------------------------------------------------------

    def user_json(self, uid: int, base: str) -> dict[str, Any]:
        user = self.users[uid]
        out = {k: v for k, v in user.items() if k != "state"}
        out["url"] = f"{base}/users/{uid}.json"
        if user["state"] == "purged":
            out.update(name="Permanently deleted user", email=None, phone=None, notes="",
                       details="", tags=[], external_id=None, active=False,
                       user_fields={k: None for k in user["user_fields"]})
        return out

    def live_user(self, uid: int) -> dict[str, Any]:
        user = self.users.get(uid)
        if user is None or user["state"] != "live":
            raise not_found()
        return user

    def user_identities(self, uid: int) -> list[dict[str, Any]]:
        if uid not in self.users or self.users[uid]["state"] == "purged":
            raise not_found()
        return [dict(i) for i in self.idents(uid)]

    def ticket_json(self, tid: int, base: str) -> dict[str, Any]:
        ticket = self.tickets[tid]
        out = {k: v for k, v in ticket.items() if k not in ("state", "archived")}
        out["url"] = f"{base}/tickets/{tid}.json"
        return out

    def visible_ticket(self, tid: int) -> dict[str, Any]:
        ticket = self.tickets.get(tid)
        if ticket is None or ticket["state"] != "live":
            raise not_found()
        return ticket

    def user_tickets(self, uid: int, role: str) -> list[int]:
        """A user's ticket list (requested, ccd, assigned): live, not archived."""
        if uid not in self.users or self.users[uid]["state"] == "purged":
            raise not_found()
        key = {"requested": "requester_id", "ccd": "email_cc_ids",
               "assigned": "assignee_id"}[role]
        out = []
        for tid, t in sorted(self.tickets.items()):
            if t["state"] != "live" or t["archived"]:
                continue
            value = t[key]
            if (uid in value) if isinstance(value, list) else value == uid:
                out.append(tid)
        return out

    # writes -----------------------------------------------------------------------------

    def soft_delete_user(self, uid: int) -> dict[str, Any]:
        user = self.live_user(uid)
        user["state"] = "deleted"
        user["active"] = False
        return user

    def purge_user(self, uid: int) -> None:
        user = self.users.get(uid)
        if user is None or user["state"] != "deleted":
            raise not_found()
        user["state"] = "purged"
        for iid in list(self.by_user.get(uid, ())):
            self._forget(iid)

    def update_user(self, uid: int, changes: dict[str, Any]) -> dict[str, Any]:
        user = self.live_user(uid)
        for key, value in changes.items():
            if key in ("name", "suspended", "notes", "details"):
                user[key] = value
            elif key == "tags":
                user["tags"] = sorted({str(v).lower() for v in value})
            elif key == "user_fields":
                user["user_fields"].update(value)
            elif key in ("email", "phone"):
                # PUT never replaces a primary email: Zendesk adds a secondary identity
                if value and not any(i["value"] == value for i in self.idents(uid)):
                    kind = "email" if key == "email" else "phone_number"
                    has_primary = any(i["type"] == kind and i["primary"]
                                      for i in self.idents(uid))
                    self._identity(uid, kind, value, primary=not has_primary)
            else:
                raise ApiError(422, "RecordInvalid", f"unknown or read-only field {key}")
        user["updated_at"] = _STAMP
        return user

    def update_ticket(self, tid: int, changes: dict[str, Any]) -> dict[str, Any]:
        ticket = self.visible_ticket(tid)
        if ticket["archived"] or ticket["status"] == "closed":
            raise ApiError(422, "RecordInvalid", "Closed tickets cannot be updated")
        for key, value in changes.items():
            if key == "id" and value == tid:
                continue  # zenpy sends the ticket's own id with every update
            if key == "additional_tags":
                ticket["tags"] = sorted(set(ticket["tags"]) | {str(v).lower() for v in value})
            elif key == "tags":
                ticket["tags"] = sorted({str(v).lower() for v in value})
            elif key == "status" and value in ("new", "open", "pending", "solved", "closed"):
                ticket["status"] = value
            elif key == "comment" and isinstance(value, dict):
                self._add_comment(tid, value)
            else:
                raise ApiError(422, "RecordInvalid", f"unknown or read-only field {key}")
        return ticket

    def upload(self, name: str, content_type: str, data: bytes,
               token: str | None = None) -> dict[str, Any]:
        """``POST /uploads?filename=``: keep a file under a new token (or add it to
        ``token``'s); the ``upload`` object Zendesk answers."""
        if token is not None and token not in self.uploads:
            raise ApiError(422, "RecordInvalid", "invalid upload token")
        token = token or secrets.token_hex(12)
        aid = self.next_id()
        attachment = {"id": aid, "file_name": name, "content_type": content_type,
                      "content_url": f"https://fake.zendesk.invalid/attachments/token/{aid}/"
                                     f"?name={name}", "size": len(data), "inline": False}
        self.files[aid] = data
        self.uploads.setdefault(token, []).append(attachment)
        return {"token": token, "expires_at": _STAMP, "attachment": attachment,
                "attachments": list(self.uploads[token])}

    def _add_comment(self, tid: int, comment: dict[str, Any]) -> None:
        """A comment of a ticket update: ``body`` or ``html_body``, ``public`` (default
        true), ``uploads`` (tokens, each used once)."""
        given_html = comment.get("html_body")
        text = comment.get("body")
        if isinstance(given_html, str) and given_html.strip():
            markup, text = given_html, _TAGS.sub(" ", given_html)
        elif isinstance(text, str) and text.strip():
            markup = f"<div class=\"zd-comment\"><p>{text}</p></div>"
        else:
            raise ApiError(422, "RecordInvalid", "Comment: body cannot be blank")
        tokens = comment.get("uploads") or []
        if not isinstance(tokens, list) or any(t not in self.uploads for t in tokens):
            raise ApiError(422, "RecordInvalid", "invalid upload token")
        files = [a for t in tokens for a in self.uploads.pop(t)]
        public = comment.get("public", True)
        self.comments[tid].append({
            "id": self.next_id(), "type": "Comment",
            "author_id": comment.get("author_id") or 1, "body": text,
            "html_body": markup, "plain_body": text, "public": public is not False,
            "created_at": _STAMP,
            "attachments": files})
        if public is not False:
            self.tickets[tid]["is_public"] = True

    def add_tags(self, uid: int, tags: Iterable[str]) -> list[str]:
        user = self.live_user(uid)
        user["tags"] = sorted(set(user["tags"]) | {str(t).lower() for t in tags})
        return user["tags"]

    def add_identity(self, uid: int, kind: str, value: str) -> dict[str, Any]:
        self.live_user(uid)
        return self._identity(uid, kind, value, primary=False)

    def make_primary(self, uid: int, iid: int) -> list[dict[str, Any]]:
        self.live_user(uid)
        ident = self.identities.get(iid)
        if ident is None or ident["user_id"] != uid:
            raise not_found()
        for other in self.idents(uid):
            if other["type"] == ident["type"]:
                other["primary"] = other["id"] == iid
        self._mirror(uid)
        return self.user_identities(uid)

    def delete_identity(self, uid: int, iid: int) -> None:
        self.live_user(uid)
        ident = self.identities.get(iid)
        if ident is None or ident["user_id"] != uid:
            raise not_found()
        if ident["primary"] and ident["type"] == "email":
            raise ApiError(422, "RecordInvalid", "Cannot delete the primary email identity")
        self._forget(iid)
        self._mirror(uid)

    def submit(self, action: str, ticket_ids: list[int]) -> Job:
        if not ticket_ids or len(ticket_ids) > 100:
            raise ApiError(400, "InvalidValue", "ids must hold 1 to 100 ticket ids")
        job = Job(secrets.token_hex(16), action, list(ticket_ids), self.job_polls)
        self.jobs[job.id] = job
        return job

    def poll_job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found()
        if job.status != "completed":
            job.polls_left -= 1
            if job.polls_left <= 0:
                job.results = [self._run(job.action, tid) for tid in job.ticket_ids]
                job.status = "completed"
            else:
                job.status = "working"
        return job

    def _run(self, action: str, tid: int) -> dict[str, Any]:
        ticket = self.tickets.get(tid)
        result: dict[str, Any] = {"id": tid, "action": action}
        if self.failing_tickets.get(tid) == action:
            del self.failing_tickets[tid]
            return result | {"success": False, "status": "Failed",
                             "error": "TicketDeleteFailed",
                             "details": "The ticket could not be deleted"}
        wanted = "live" if action == "delete" else "deleted"
        if ticket is None or ticket["state"] != wanted:
            return result | {"success": False, "status": "Failed", "error": "RecordNotFound",
                             "details": "Ticket not found"}
        if action == "delete":
            ticket["state"] = "deleted"
        else:
            ticket["state"] = "purged"
            self.comments[tid] = []
        return result | {"success": True, "status": "Deleted"}

    def deleted_tickets(self) -> list[dict[str, Any]]:
        return [{"id": tid, "subject": t["subject"], "description": t["description"],
                 "actor": {"id": 1, "name": "Erasure agent"},
                 "deleted_at": _STAMP, "previous_state": t["status"]}
                for tid, t in sorted(self.tickets.items()) if t["state"] == "deleted"]

    def redact(self, comment_id: int, ticket_id: int, html_body: str | None,
               attachment_urls: Iterable[str]) -> dict[str, Any]:
        ticket = self.tickets.get(ticket_id)
        if ticket is None or ticket["state"] == "purged":
            raise not_found()
        comment = next((c for c in self.comments[ticket_id] if c["id"] == comment_id), None)
        if comment is None:
            raise not_found()
        urls = set(attachment_urls)
        if html_body is not None:
            if _REDACT.sub(r"\1", html_body) != comment["html_body"]:
                raise ApiError(400, "InvalidValue",
                               "html_body must be the comment's html_body with <redact> tags")
            html = _REDACT.sub(lambda m: REDACTED * len(m.group(1)), html_body)
            comment["html_body"] = html
            comment["plain_body"] = comment["body"] = _TAGS.sub("", html)
        known = {a["content_url"] for a in comment["attachments"]}
        if urls - known:
            raise ApiError(400, "InvalidValue", "external_attachment_urls: unknown attachment")
        for att in comment["attachments"]:
            if att["content_url"] in urls:
                att.update(file_name="redacted.txt", content_type="text/plain", size=0,
                           content_url=att["content_url"].split("?")[0] + "?name=redacted")
        self._describe(ticket_id)
        return comment

    def old_redact(self, ticket_id: int, comment_id: int, text: str) -> dict[str, Any]:
        """The older ``PUT /tickets/{id}/comments/{id}/redact``: refuses closed tickets."""
        ticket = self.visible_ticket(ticket_id)
        if ticket["status"] == "closed" or ticket["archived"]:
            raise ApiError(422, "RecordInvalid", "Closed tickets cannot be updated")
        comment = next((c for c in self.comments[ticket_id] if c["id"] == comment_id), None)
        if comment is None:
            raise not_found()
        if not text or text not in comment["body"]:
            raise ApiError(422, "RecordInvalid", "text is not in the comment")
        for key in ("body", "plain_body", "html_body"):
            comment[key] = comment[key].replace(text, REDACTED * len(text))
        self._describe(ticket_id)
        return comment
