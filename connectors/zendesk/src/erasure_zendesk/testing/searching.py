"""How the fake's search matches users and tickets (``/search``, ``/search/export``): a
mixin of :class:`.store.Store`, kept apart so that the account's rules stay readable."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .query import Query

__all__ = ["Searching", "digits"]


def digits(value: str) -> str:
    """The digits of a phone number as stored (search compares phones by them)."""
    return re.sub(r"\D", "", value)


def _equal(wanted: str, have: set[str]) -> bool:
    """A query value against an item's values: exact, or a prefix with a trailing ``*``."""
    if wanted.endswith("*"):
        return any(h.startswith(wanted[:-1]) for h in have)
    return wanted in have


class Searching:
    """Search over the store's users and tickets (keywords OR per keyword, AND across)."""

    if TYPE_CHECKING:
        users: dict[int, dict[str, Any]]
        identities: dict[int, dict[str, Any]]
        tickets: dict[int, dict[str, Any]]
        comments: dict[int, list[dict[str, Any]]]
        by_email: dict[str, int]

        def idents(self, uid: int) -> list[dict[str, Any]]: ...

    def search(self, query: Query) -> list[tuple[str, int]]:
        """(result type, id) of everything the query matches, in id order."""
        out: list[tuple[str, int]] = []
        if query.type in (None, "user"):
            out += [("user", uid) for uid in self._user_candidates(query)
                    if self.users[uid]["state"] == "live" and self._user_matches(uid, query)]
        if query.type in (None, "ticket"):
            out += [("ticket", tid) for tid, t in sorted(self.tickets.items())
                    if t["state"] == "live" and self._ticket_matches(tid, query)]
        return out

    def _user_candidates(self, q: Query) -> list[int]:
        """Users an email query can match, through the email index (exact values only);
        every user otherwise."""
        emails = q.terms.get("email")
        if emails and not any(v.endswith("*") for v in emails):
            hits = (self.by_email.get(v.lower()) for v in emails)
            return sorted({self.identities[i]["user_id"] for i in hits if i is not None})
        return sorted(self.users)

    def _user_values(self, uid: int, key: str) -> set[str] | None:
        user = self.users[uid]
        idents = self.idents(uid)
        if key == "email":
            return {i["value"].lower() for i in idents if i["type"] == "email"}
        if key == "phone":
            return {digits(i["value"]) for i in idents if i["type"] == "phone_number"}
        if key == "name":
            return {user["name"].lower()}
        if key in ("tags", "role"):
            return set(user["tags"]) if key == "tags" else {user["role"]}
        value = user["user_fields"].get(key)  # a custom user field, by its key
        return None if value is None else {str(value).lower()}

    def _user_matches(self, uid: int, q: Query) -> bool:
        for key, wanted in q.terms.items():
            have = self._user_values(uid, key)
            norm = (lambda v: digits(v)) if key == "phone" else (lambda v: v.lower())
            if have is None or not any(_equal(norm(w), have) for w in wanted):
                return False
        if not q.text:
            return True
        user = self.users[uid]
        return q.matches_text(" ".join([user["name"], user["notes"],
                                        *[i["value"] for i in self.idents(uid)]]))

    def _ticket_values(self, tid: int, key: str) -> set[str] | None:
        t = self.tickets[tid]
        single = {"requester": "requester_id", "assignee": "assignee_id",
                  "submitter": "submitter_id", "status": "status"}
        listed = {"cc": "email_cc_ids", "follower": "follower_ids", "tags": "tags"}
        if key in single:
            return {str(t[single[key]]).lower()}
        if key in listed:
            return {str(v).lower() for v in t[listed[key]]}
        if key == "commenter":
            return {str(c["author_id"]) for c in self.comments[tid]}
        return None

    def _ticket_matches(self, tid: int, q: Query) -> bool:
        for key, wanted in q.terms.items():
            have = self._ticket_values(tid, key)
            if have is None or not any(_equal(w.lower(), have) for w in wanted):
                return False
        if not q.text:
            return True
        t = self.tickets[tid]
        return q.matches_text(" ".join([t["subject"],
                                        *(c["plain_body"] for c in self.comments[tid])]))
