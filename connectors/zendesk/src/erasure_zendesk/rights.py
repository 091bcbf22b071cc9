"""rectify (Art. 16) and object_to (Art. 21) on the subject's Zendesk user.

Rectification corrects the user's name, and emails and phones through identities: a
``PUT`` never replaces a primary email (Zendesk adds the new one as a secondary), so the
corrected value is added as an identity, made primary where the old one was, and the old
identity removed. Tickets hold no copy of the requester's email or phone, nor an opt-out
of their own: ticket findings answer ALREADY_DONE (what an agent sees of the requester
changes with the user).

An objection tags the user (``objection_tags``: one tag per scope it can honour).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from erasure import (
    CapabilityNotSupported,
    Correction,
    CorrectionType,
    Finding,
    ItemOutcome,
    ItemStatus,
    ObjectionScope,
    PermanentError,
)

from .client import ZendeskClient
from .exporting import _show_many
from .refs import USER, ref_id
from .settings import ZendeskSettings

__all__ = ["Rights"]

S = ItemStatus
_KIND = {CorrectionType.EMAIL: "email", CorrectionType.PHONE: "phone_number"}


class Rights:
    """Rectification and objection for one system."""

    def __init__(self, client: ZendeskClient, settings: ZendeskSettings) -> None:
        self.client = client
        self.settings = settings

    # rectify ----------------------------------------------------------------------------

    def rectify(self, findings: Sequence[Finding], corrections: Sequence[Correction]
                ) -> list[ItemOutcome]:
        for c in corrections:
            if c.type is CorrectionType.ADDRESS:
                raise CapabilityNotSupported("zendesk maps no field to a postal address")
        fixes: dict[str, list[Correction]] = {}
        for c in corrections:
            fixes.setdefault(c.subject, []).append(c)
        out: list[ItemOutcome] = []
        for f, user in self._live_users(findings, out):
            try:
                did = self._rectify_user(user, fixes.get(f.subject, []))
            except PermanentError as exc:
                out.append(ItemOutcome(f, S.FAILED, error=str(exc)))
                continue
            out.append(ItemOutcome(f, S.DONE if did else S.ALREADY_DONE))
        return out + [ItemOutcome(f, S.ALREADY_DONE) for f in findings if f.kind != USER]

    def _live_users(self, findings: Sequence[Finding], out: list[ItemOutcome]
                    ) -> list[tuple[Finding, dict[str, Any]]]:
        """The user findings with their records, read in one show_many; a user that is gone
        or deleted gets a FAILED outcome in ``out`` instead."""
        users = _show_many(self.client, "users/show_many", "users",
                           [ref_id(f) for f in findings if f.kind == USER])
        live = []
        for f in findings:
            if f.kind != USER:
                continue
            user = users.get(ref_id(f))
            if user is None or not user.get("active"):
                out.append(ItemOutcome(f, S.FAILED, error="user not found or deleted"))
            else:
                live.append((f, user))
        return live

    def _rectify_user(self, user: dict[str, Any], fixes: list[Correction]) -> bool:
        uid = int(user["id"])
        did = False
        for fix in fixes:
            if fix.type is CorrectionType.NAME:
                if fix.matches(user.get("name")) is False:
                    self.client.put(f"users/{uid}", "correct name",
                                    {"user": {"name": fix.new}})
                    did = True
            else:
                did = self._replace_identity(uid, _KIND[fix.type], fix) or did
                did = self._correct_fields(user, fix) or did
        return did

    def _correct_fields(self, user: dict[str, Any], fix: Correction) -> bool:
        """Set the mapped custom fields of the correction's type that hold an old value."""
        kind = fix.type.value
        stored = user.get("user_fields") or {}
        changes = {key: fix.new for key, t in self.settings.user_fields.items()
                   if t == kind and fix.matches(stored.get(key)) is False}
        if changes:
            self.client.put(f"users/{int(user['id'])}", "correct user fields",
                            {"user": {"user_fields": changes}})
        return bool(changes)

    def _replace_identity(self, uid: int, kind: str, fix: Correction) -> bool:
        """Add the corrected identity, make it primary where an old one was, remove the
        old ones; True if anything changed."""
        idents = [i for page in self.client.pages(f"users/{uid}/identities", "identities",
                                                  "read identities") for i in page
                  if i.get("type") == kind]
        old = [i for i in idents if fix.matches(i.get("value")) is False]
        if not old:
            return False
        new = next((i for i in idents if fix.matches(i.get("value")) is True), None)
        if new is None:
            body = self.client.post(f"users/{uid}/identities", "add corrected identity",
                                    {"identity": {"type": kind, "value": fix.new}})
            new = body["identity"]
        if any(i.get("primary") for i in old) and not new.get("primary"):
            self.client.put(f"users/{uid}/identities/{int(new['id'])}/make_primary",
                            "make corrected identity primary", {})
        for ident in old:
            self.client.delete(f"users/{uid}/identities/{int(ident['id'])}",
                               "remove old identity")
        return True

    # object_to --------------------------------------------------------------------------

    def object_to(self, findings: Sequence[Finding], scope: ObjectionScope
                  ) -> list[ItemOutcome]:
        tag = self.settings.objection_tags.get(scope.value)
        if tag is None:
            raise CapabilityNotSupported(
                f"zendesk has no opt-out configured for {scope.value} (objection_tags)")
        out: list[ItemOutcome] = []
        for f, user in self._live_users(findings, out):
            did = tag not in (user.get("tags") or [])
            if did:
                self.client.put(f"users/{ref_id(f)}/tags", "record objection",
                                {"tags": [tag]})
            out.append(ItemOutcome(f, S.DONE if did else S.ALREADY_DONE))
        return out + [ItemOutcome(f, S.ALREADY_DONE) for f in findings if f.kind != USER]
