"""restrict (GDPR Art. 18): tag and/or suspend the subject's user, tag their own tickets.

Someone else's ticket the subject only takes part in is not marked (that would restrict
the other person's ticket): it answers NOT_SUPPORTED, and the user's mark covers it.
Archived tickets cannot be updated in Zendesk: those answer NOT_SUPPORTED too.
"""

from __future__ import annotations

from collections.abc import Sequence

from erasure import Finding, ItemOutcome, ItemStatus

from .client import NotFound, ZendeskClient
from .exporting import _show_many
from .refs import TICKET, USER, ref_id
from .settings import ZendeskSettings

__all__ = ["Restrictor"]

S = ItemStatus


class Restrictor:
    """Marks users and their tickets as restricted, as the settings say."""

    def __init__(self, client: ZendeskClient, settings: ZendeskSettings) -> None:
        self.client = client
        self.settings = settings

    def restrict(self, findings: Sequence[Finding]) -> list[ItemOutcome]:
        tag = self.settings.restrict_tag
        users = _show_many(self.client, "users/show_many", "users",
                           [ref_id(f) for f in findings if f.kind == USER])
        tickets = _show_many(self.client, "tickets/show_many", "tickets",
                             [ref_id(f) for f in findings if f.kind == TICKET])
        out = []
        for f in findings:
            if f.kind == USER:
                out.append(self._user(f, users.get(ref_id(f)), tag))
            elif f.kind == TICKET:
                out.append(self._ticket(f, tickets.get(ref_id(f)), tag))
            else:
                out.append(ItemOutcome(f, S.NOT_SUPPORTED, error="someone else's ticket: "
                                       "restricted through the subject's user"))
        return out

    def _user(self, f: Finding, user: dict | None, tag: str) -> ItemOutcome:
        if user is None or not user.get("active"):
            return ItemOutcome(f, S.FAILED, error="user not found or deleted")
        uid = ref_id(f)
        changed = False
        if "tag" in self.settings.restrict_with and tag not in (user.get("tags") or []):
            self.client.put(f"users/{uid}/tags", "tag user", {"tags": [tag]})
            changed = True
        if "suspend" in self.settings.restrict_with and not user.get("suspended"):
            self.client.put(f"users/{uid}", "suspend user", {"user": {"suspended": True}})
            changed = True
        return ItemOutcome(f, S.DONE if changed else S.ALREADY_DONE)

    def _ticket(self, f: Finding, ticket: dict | None, tag: str) -> ItemOutcome:
        if ticket is None:
            return ItemOutcome(f, S.FAILED, error="ticket not found")
        if tag in (ticket.get("tags") or []):
            return ItemOutcome(f, S.ALREADY_DONE)
        if ticket.get("status") == "closed":
            return ItemOutcome(f, S.NOT_SUPPORTED, error="closed or archived tickets cannot "
                               "be updated; the user is marked")
        try:
            self.client.put(f"tickets/{ref_id(f)}", "tag ticket",
                            {"ticket": {"additional_tags": [tag]}})
        except NotFound:
            return ItemOutcome(f, S.FAILED, error="ticket not found")
        return ItemOutcome(f, S.DONE)
