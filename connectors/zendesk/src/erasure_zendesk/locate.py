"""find: the subject's users (by every identity), their tickets in every role, and tickets
whose text quotes them.

A batch of subjects shares its queries: one user search per ``search_batch`` emails (and
phones), one ticket search per role and ``search_batch`` users. Search results are only
candidates: every user is read with its identities and matched exactly, so a search that
matches loosely never attributes someone else's record. Soft-deleted users are not in
search: ``/deleted_users`` is read too, since they still hold every field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from erasure import Finding, Identifier, IdentifierType, Subject

from .client import NotFound, ZendeskClient
from .refs import (
    MENTION,
    PARTICIPATION,
    TICKET,
    USER,
    identity_matches,
    normal_identity,
    safe_value,
    text_mentions,
)
from .settings import ZendeskSettings

__all__ = ["Locator", "comments_of"]

E, P, U = IdentifierType.EMAIL, IdentifierType.PHONE, IdentifierType.USER_ID
# search keyword -> the role it names on a ticket
_ROLES = (("requester", "requester"), ("cc", "cc"), ("follower", "follower"),
          ("assignee", "assignee"), ("commenter", "commenter"))


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def comments_of(client: ZendeskClient, ticket_id: int) -> list[dict[str, Any]]:
    """Every comment of a ticket (archived and closed ones too)."""
    return [c for page in client.pages(f"tickets/{ticket_id}/comments", "comments",
                                       "read comments") for c in page]


@dataclass
class _Users:
    """Users matched so far: per user id, per subject key, the identifiers that matched."""

    matched: dict[int, dict[str, set[Identifier]]] = field(default_factory=dict)
    related: dict[int, set[Identifier]] = field(default_factory=dict)
    #: user id -> custom user field keys that matched
    fields: dict[int, set[str]] = field(default_factory=dict)


class Locator:
    """Finds what a batch of subjects has in one Zendesk account."""

    def __init__(self, client: ZendeskClient, settings: ZendeskSettings, system: str) -> None:
        self.client = client
        self.settings = settings
        self.system = system

    def find(self, subjects: Sequence[Subject]) -> list[Finding]:
        users = self._users(subjects)
        roles = self._tickets(users)
        findings = self._user_findings(users)
        findings += self._ticket_findings(users, roles)
        if self.settings.search_text:
            seen = {(f.subject, f.ref) for f in findings}
            findings += self._mentions(subjects, seen)
        return findings

    # users ------------------------------------------------------------------------------

    def _users(self, subjects: Sequence[Subject]) -> _Users:
        wanted: dict[Identifier, set[str]] = {}
        for s in subjects:
            for ident in s.identifiers:
                if ident.type in (E, P, U):
                    wanted.setdefault(ident, set()).add(s.key)
        candidates: set[int] = set()
        batch = self.settings.search_batch
        for itype, keyword in ((E, "email"), (P, "phone")):
            values = sorted(i.value for i in wanted if i.type is itype and safe_value(i.value))
            for chunk in _chunks(values, batch):
                query = " ".join(f'{keyword}:"{v}"' for v in chunk)
                candidates |= {int(r["id"]) for r in self.client.search(query, "user",
                                                                        "search users")}
        in_fields = self._custom_fields(wanted)
        candidates |= set(in_fields)
        by_id = {int(i.value): i for i in wanted if i.type is U and i.value.isdigit()}
        for chunk in _chunks(sorted(by_id), 100):
            body = self.client.get("users/show_many", "read users",
                                   ids=",".join(map(str, chunk)))
            candidates |= {int(u["id"]) for u in body.get("users") or []}
        candidates |= self._deleted_users({i for i in wanted if i.type in (E, P)})
        users = _Users()
        for uid in sorted(candidates):
            self._match_user(uid, wanted, by_id, users, in_fields.get(uid, {}))
        return users

    def _custom_fields(self, wanted: dict[Identifier, set[str]]
                       ) -> dict[int, dict[str, set[Identifier]]]:
        """Users whose mapped custom fields hold a wanted value: per user, per field key,
        the identifiers there (read from the search results, compared normalised)."""
        out: dict[int, dict[str, set[Identifier]]] = {}
        for key, kind in sorted(self.settings.user_fields.items()):
            itype = E if kind == "email" else P
            values = sorted(i.value for i in wanted if i.type is itype and safe_value(i.value))
            for chunk in _chunks(values, self.settings.search_batch):
                query = " ".join(f'{key}:"{v}"' for v in chunk)
                for user in self.client.search(query, "user", "search user fields"):
                    stored = (user.get("user_fields") or {}).get(key)
                    ident = normal_identity("email" if kind == "email" else "phone_number",
                                            str(stored)) if stored else None
                    if ident is not None and ident in wanted:
                        out.setdefault(int(user["id"]), {}).setdefault(key, set()).add(ident)
        return out

    def _deleted_users(self, wanted: set[Identifier]) -> set[int]:
        """Soft-deleted users whose primary email or phone is wanted (search skips them)."""
        if not wanted:
            return set()
        out = set()
        for page in self.client.pages("deleted_users", "deleted_users", "list deleted users"):
            for user in page:
                for kind, key in (("email", "email"), ("phone_number", "phone")):
                    value = user.get(key)
                    if value and identity_matches(kind, value, wanted):
                        out.add(int(user["id"]))
        return out

    def _match_user(self, uid: int, wanted: dict[Identifier, set[str]],
                    by_id: dict[int, Identifier], users: _Users,
                    in_fields: dict[str, set[Identifier]]) -> None:
        try:
            identities = [i for page in self.client.pages(
                f"users/{uid}/identities", "identities", "read identities") for i in page]
        except NotFound:  # permanently deleted meanwhile: nothing of anyone left
            return
        wanted_set = set(wanted)
        related: set[Identifier] = set()
        hits: set[Identifier] = set()
        for ident in identities:
            kind, value = str(ident.get("type")), str(ident.get("value") or "")
            hit = identity_matches(kind, value, wanted_set)
            if hit is not None:
                hits.add(hit)
            normal = normal_identity(kind, value)
            if normal is not None:
                related.add(normal)
        if uid in by_id:
            hits.add(by_id[uid])
        for key, idents in in_fields.items():
            hits |= idents
            users.fields.setdefault(uid, set()).add(key)
        for ident in hits:
            for key in wanted[ident]:
                users.matched.setdefault(uid, {}).setdefault(key, set()).add(ident)
        if uid in users.matched:
            users.related[uid] = related

    # tickets ----------------------------------------------------------------------------

    def _tickets(self, users: _Users) -> dict[int, dict[int, set[str]]]:
        """Per ticket id, per matched user id, the user's roles on it."""
        roles: dict[int, dict[int, set[str]]] = {}

        def add(tid: int, uid: int, role: str) -> None:
            roles.setdefault(tid, {}).setdefault(uid, set()).add(role)

        uids = sorted(users.matched)
        for uid in uids:  # the list by id: no index lag for what gets deleted
            try:
                for page in self.client.pages(f"users/{uid}/tickets/requested", "tickets",
                                              "list requested tickets"):
                    for t in page:
                        add(int(t["id"]), uid, "requester")
            except NotFound:
                continue
        keywords = [k for k in _ROLES if k[0] != "commenter" or self.settings.find_commented]
        for keyword, role in keywords:
            for chunk in _chunks(uids, self.settings.search_batch):
                query = " ".join(f"{keyword}:{uid}" for uid in chunk)
                hits = self.client.search(query, "ticket", "search tickets")
                if role == "commenter":
                    self._commenters(hits, chunk, add)
                    continue
                for t in hits:
                    for uid in chunk:
                        if _holds(t, role, uid):
                            add(int(t["id"]), uid, role)
        return self._confirmed(roles)

    def _confirmed(self, roles: dict[int, dict[int, set[str]]]
                   ) -> dict[int, dict[int, set[str]]]:
        """Only the tickets that still exist, read by id: the search index lags behind
        deletions (a ticket deleted minutes ago is still found), and a stale hit would be
        reported as residue after an erasure that removed it."""
        ids = sorted(roles)
        live: set[int] = set()
        for start in range(0, len(ids), 100):
            body = self.client.get("tickets/show_many", "read tickets",
                                   ids=",".join(map(str, ids[start:start + 100])))
            live |= {int(t["id"]) for t in body.get("tickets") or []}
        return {tid: r for tid, r in roles.items() if tid in live}

    def _commenters(self, hits: list[dict[str, Any]], uids: Sequence[int], add: Any) -> None:
        """Which of ``uids`` commented on the tickets a commenter search of them all
        returned: the comments of each ticket say who, or, when there are more tickets
        than users, one search per user (fewer requests)."""
        if len(hits) > len(uids):
            for uid in uids:
                for t in self.client.search(f"commenter:{uid}", "ticket", "search tickets"):
                    add(int(t["id"]), uid, "commenter")
            return
        for ticket in hits:
            tid = int(ticket["id"])
            try:
                authors = {int(c.get("author_id") or 0)
                           for c in comments_of(self.client, tid)}
            except NotFound:  # deleted since the index saw it
                continue
            for uid in uids:
                if uid in authors:
                    add(tid, uid, "commenter")

    def _user_findings(self, users: _Users) -> list[Finding]:
        out = []
        for uid, per_subject in sorted(users.matched.items()):
            for key, matched in sorted(per_subject.items()):
                related = tuple(sorted(users.related.get(uid, set()) - matched,
                                       key=lambda i: (i.type.value, i.value)))
                names = ("identities", *sorted(f"user_fields.{k}"
                                                for k in users.fields.get(uid, ())))
                out.append(Finding(system=self.system, subject=key, ref=f"user/{uid}",
                                   kind=USER, matched=_ordered(matched),
                                   fields=names, related=related))
        return out

    def _ticket_findings(self, users: _Users, roles: dict[int, dict[int, set[str]]]
                         ) -> list[Finding]:
        merged: dict[tuple[str, int], tuple[set[Identifier], set[str]]] = {}
        for tid, per_user in roles.items():
            for uid, user_roles in per_user.items():
                for key, matched in users.matched.get(uid, {}).items():
                    idents, fields = merged.setdefault((key, tid), (set(), set()))
                    idents |= matched
                    fields |= user_roles
        out = []
        for (key, tid), (idents, fields) in sorted(merged.items()):
            kind = TICKET if "requester" in fields else PARTICIPATION
            out.append(Finding(system=self.system, subject=key, ref=f"ticket/{tid}",
                               kind=kind, matched=_ordered(idents),
                               fields=tuple(sorted(fields))))
        return out

    # free text --------------------------------------------------------------------------

    def _mentions(self, subjects: Sequence[Subject], seen: set[tuple[str, str]]
                  ) -> list[Finding]:
        out = []
        for s in subjects:
            for ident in s.identifiers:
                if ident.type not in (E, P) or not safe_value(ident.value):
                    continue
                hits = self.client.search(f'"{ident.value}"', "ticket", "search ticket text")
                for t in hits:
                    ref = f"ticket/{int(t['id'])}"
                    if (s.key, ref) in seen:
                        continue
                    try:
                        comments = comments_of(self.client, int(t["id"]))
                    except NotFound:  # deleted since the index saw it
                        continue
                    texts = [str(t.get("subject") or "")] + [
                        str(c.get("plain_body") or c.get("body") or "") for c in comments]
                    if any(text_mentions(x, ident.value) for x in texts):
                        seen.add((s.key, ref))
                        out.append(Finding(system=self.system, subject=s.key, ref=ref,
                                           kind=MENTION, matched=(ident,),
                                           fields=("comments",)))
        return out


def _holds(ticket: dict[str, Any], role: str, uid: int) -> bool:
    field_of = {"requester": "requester_id", "assignee": "assignee_id",
                "cc": "email_cc_ids", "follower": "follower_ids"}[role]
    value = ticket.get(field_of)
    return uid in value if isinstance(value, list) else value == uid


def _ordered(idents: Iterable[Identifier]) -> tuple[Identifier, ...]:
    return tuple(sorted(idents, key=lambda i: (i.type.value, i.value)))
