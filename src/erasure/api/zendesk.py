"""The Zendesk ticket trigger: ``POST /v1/webhooks/zendesk``.

A Zendesk trigger (ticket tagged, identity verified) calls a webhook with a JSON body the
admin writes from placeholders (docs/api.md)::

    {"ticket": {"id": "{{ticket.id}}", "tags": "{{ticket.tags}}",
                "requester_email": "{{ticket.requester.email}}",
                "custom_fields": {"360001234": "{{ticket.ticket_field_360001234}}"}}}

Zendesk signs each call: ``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(signing
secret, ``X-Zendesk-Webhook-Signature-Timestamp`` + raw body)). A call is taken only when
that verifies, its timestamp is fresh (``max_age_seconds``) and its signature was not seen
before (kept in the ledger); else 401 (403 for a replay) and nothing is recorded.

The ticket becomes an :class:`~.schemas.SubmitRequest` (type from the ticket's tags,
identifiers from its requester and configured fields, verified by a tag) and goes the same
way as ``POST /v1/requests``, idempotent per ticket and type: the same ticket with the same
type tag again is the same request; with another type tag (access, then erasure) a new
request of that type. No HTTP here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import ZendeskApiSettings
from ..ledger import Ledger
from .schemas import Identity, SubmitRequest

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookRefused", "ZendeskWebhook",
           "signature", "to_request", "verify"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"


class WebhookRefused(Exception):
    """The call is not taken: ``status`` (401, 403 or 422) and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZendeskTicket(_Body):
    """The ticket as the webhook's body template renders it."""

    id: int = Field(gt=0)
    #: ``{{ticket.tags}}`` renders as one space-separated string; a list is taken too
    tags: str | list[str] = ""
    requester_email: str | None = Field(None, max_length=320)
    #: field id -> value (``{{ticket.ticket_field_<id>}}``)
    custom_fields: dict[str, str | None] = Field(default_factory=dict, max_length=50)

    def tag_set(self) -> set[str]:
        tags = self.tags.split() if isinstance(self.tags, str) else self.tags
        return {t.strip().lower() for t in tags if t.strip()}


class ZendeskWebhook(_Body):
    """The body: ``{"ticket": {...}}``."""

    ticket: ZendeskTicket


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """Zendesk's signature of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str:
    low = name.lower()
    return next((v for k, v in headers.items() if k.lower() == low), "")


def verify(settings: ZendeskApiSettings, ledger: Ledger, headers: Mapping[str, str],
           body: bytes, now: float | None = None) -> None:
    """Take the call or raise :class:`WebhookRefused`: forged 401, stale 401, replayed
    403. Only a call that passes is remembered (its signature), so a refused one leaves
    nothing in the ledger."""
    now = time.time() if now is None else now
    given, stamp = _header(headers, SIGNATURE_HEADER), _header(headers, TIMESTAMP_HEADER)
    if not given or not stamp:
        raise WebhookRefused(401, "missing Zendesk webhook signature headers")
    want = signature(settings.signing_secret.get_secret_value().encode(), stamp, body)
    if not hmac.compare_digest(given.encode(), want.encode()):
        raise WebhookRefused(401, "invalid Zendesk webhook signature")
    try:
        when = datetime.fromisoformat(stamp.strip())
        sent = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except ValueError:
        raise WebhookRefused(401, "invalid Zendesk webhook timestamp") from None
    if sent - now > settings.max_age_seconds:
        raise WebhookRefused(401, "Zendesk webhook timestamp from the future (the clocks "
                                  "of Zendesk and this server differ: check NTP)")
    if now - sent > settings.max_age_seconds:
        raise WebhookRefused(401, "stale Zendesk webhook timestamp")
    # kept twice as long as a timestamp can pass: a replay is refused while it could work
    if not ledger.remember_signature(want, now, 2 * settings.max_age_seconds + 60):
        raise WebhookRefused(403, "replayed Zendesk webhook (signature seen before)")


def parse(body: bytes) -> ZendeskTicket:
    """The ticket of a verified body; 422 naming the first problem (never a value)."""
    try:
        return ZendeskWebhook.model_validate_json(body).ticket
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise WebhookRefused(422, f"webhook body: {where}: {first.get('msg', '')}") from None


def to_request(settings: ZendeskApiSettings, ticket: ZendeskTicket) -> SubmitRequest:
    """The request a tagged ticket asks for (422 when its tags or identifiers do not say).
    Idempotent per ticket and type: ``subject_request_id`` is ``zendesk-<ticket id>-<type>``
    (a ticket may ask for access first and for erasure later: two requests)."""
    tags = ticket.tag_set()
    types = sorted({kind for tag, kind in settings.type_tags.items() if tag.lower() in tags})
    if not types:
        raise WebhookRefused(422, "the ticket has no request-type tag (type_tags)")
    if len(types) > 1:
        raise WebhookRefused(422, f"the ticket's tags ask for {len(types)} request types")
    found: list[tuple[str, str, str]] = []  # (where in the body, type, value)
    if settings.requester_email and ticket.requester_email and ticket.requester_email.strip():
        found.append(("requester_email", "email", ticket.requester_email.strip()))
    for field_id, kind in sorted(settings.identifier_fields.items()):
        value = (ticket.custom_fields.get(field_id) or "").strip()
        if value:
            found.append((f"custom_fields.{field_id}", kind, value))
    unknown = sorted(set(ticket.custom_fields) - set(settings.identifier_fields))
    if unknown:
        # ids only, never values: a field the trigger sends and the config does not map
        # is most likely a typo in one of them
        log.warning("zendesk ticket %d: custom field(s) %s not in identifier_fields: "
                    "ignored", ticket.id, ", ".join(unknown[:10]))
    if not found:
        raise WebhookRefused(422, "the ticket names no identifier of the person "
                                  "(requester email or identifier_fields)")
    identities = []
    for where, itype, value in found:
        try:
            identities.append(Identity.model_validate({"identity_type": itype,
                                                       "identity_value": value}))
        except ValidationError as exc:
            msg = str(exc.errors()[0].get("msg", "")).removeprefix("Value error, ")
            raise WebhookRefused(422, f"ticket.{where}: {msg}") from None
    try:
        return SubmitRequest(
            subject_request_id=f"zendesk-{ticket.id}-{types[0]}", subject_request_type=types[0],
            subject_identities=identities,
            ticket=f"ZD-{ticket.id}", verified=settings.verified_tag.lower() in tags)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        msg = str(first.get("msg", "")).removeprefix("Value error, ")
        raise WebhookRefused(422, f"ticket: {where}: {msg}") from None
