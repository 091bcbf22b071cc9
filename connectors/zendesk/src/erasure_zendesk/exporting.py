"""export and lookup: what a finding's item holds, read by id (no search index involved)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from erasure import Finding, Record

from .client import NotFound, ZendeskClient
from .erase import subject_authors, subject_values
from .locate import comments_of
from .redact import Redactor, holds_subject
from .refs import TICKET, USER, ref_id
from .settings import ZendeskSettings

__all__ = ["Exporter", "Lookup"]

_PROFILE = ("id", "name", "email", "phone", "role", "active", "suspended", "tags",
            "user_fields", "notes", "details", "external_id", "created_at", "updated_at")
_TICKET = ("id", "subject", "status", "tags", "custom_fields", "created_at", "updated_at")


def _show_many(client: ZendeskClient, path: str, key: str, ids: list[int]
               ) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), 100):
        body = client.get(path, f"read {key}", ids=",".join(map(str, ordered[start:start + 100])))
        out.update({int(x["id"]): x for x in body.get(key) or []})
    return out


class Exporter:
    """Records of users (profile and identities) and tickets (with comments and the names
    of their attachments: the subject's own comments in other people's tickets)."""

    def __init__(self, client: ZendeskClient) -> None:
        self.client = client

    def export(self, findings: Sequence[Finding]) -> list[Record]:
        authors = subject_authors(findings)
        users = _show_many(self.client, "users/show_many", "users",
                           [ref_id(f) for f in findings if f.kind == USER])
        tickets = _show_many(self.client, "tickets/show_many", "tickets",
                             [ref_id(f) for f in findings if f.kind != USER])
        out = []
        for f in findings:
            if f.kind == USER:
                user = users.get(ref_id(f))
                if user is not None and (user.get("active") or user.get("email")
                                         or user.get("phone")):
                    out.append(Record(f, self._user(user)))
            elif ref_id(f) in tickets:
                record = self._ticket(f, tickets[ref_id(f)], authors.get(f.subject, set()))
                if record is not None:
                    out.append(record)
        return out

    def _user(self, user: dict[str, Any]) -> dict[str, Any]:
        data = {k: user.get(k) for k in _PROFILE}
        try:
            idents = [i for page in self.client.pages(
                f"users/{int(user['id'])}/identities", "identities", "read identities")
                for i in page]
        except NotFound:
            idents = []
        data["identities"] = [{k: i.get(k) for k in ("type", "value", "primary", "verified")}
                              for i in idents]
        return data

    def _ticket(self, f: Finding, ticket: dict[str, Any], authors: set[int]
                ) -> Record | None:
        own = f.kind == TICKET
        data = {k: ticket.get(k) for k in _TICKET}
        data["roles"] = list(f.fields)
        try:
            comments = comments_of(self.client, ref_id(f))
        except NotFound:
            return None
        data["comments"] = [
            {"id": c.get("id"), "by_subject": int(c.get("author_id") or 0) in authors,
             "created_at": c.get("created_at"), "body": c.get("plain_body") or c.get("body"),
             "attachments": [a.get("file_name") for a in c.get("attachments") or []]}
            for c in comments
            # someone else's ticket: only what the subject wrote (or what quotes them)
            if own or int(c.get("author_id") or 0) in authors
            or holds_subject(c, set(), [i.value for i in f.matched])]
        if not own:
            data.pop("subject")
        return Record(f, data)


class Lookup:
    """Which findings' items still hold the subject's data, read by id."""

    def __init__(self, client: ZendeskClient, settings: ZendeskSettings) -> None:
        self.client = client
        self.settings = settings
        self.redactor = Redactor(client)

    def lookup(self, findings: Sequence[Finding]) -> list[Finding]:
        authors, values = subject_authors(findings), subject_values(findings)
        users = _show_many(self.client, "users/show_many", "users",
                           [ref_id(f) for f in findings if f.kind == USER])
        doomed = [f for f in findings
                  if f.kind == TICKET and self.settings.requested_tickets == "delete"]
        live = _show_many(self.client, "tickets/show_many", "tickets",
                          [ref_id(f) for f in doomed])
        deleted: set[int] = set()
        if any(ref_id(f) not in live for f in doomed):
            deleted = {int(t["id"]) for page in self.client.pages(
                "deleted_tickets", "deleted_tickets", "list deleted tickets") for t in page}
        out = []
        for f in findings:
            if f.kind == USER:
                user = users.get(ref_id(f))
                if user is not None and (user.get("active") or user.get("email")
                                         or user.get("phone")):
                    out.append(f)
            elif f in doomed:
                if ref_id(f) in live or ref_id(f) in deleted:
                    out.append(f)
            elif self.redactor.holds(ref_id(f), authors.get(f.subject, set()),
                                     values.get(f.subject, [])):
                out.append(f)
        return out
