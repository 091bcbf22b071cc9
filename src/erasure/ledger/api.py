"""What the HTTP API keeps in the ledger: its bearer tokens (hashes only), what a request
submitted through it brought (the caller's id, callback URLs and what signs them, a
Zendesk ticket, a cancellation), and the status callbacks still to send."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..ledger_tables import api_requests_t, api_tokens_t, callbacks_t, webhook_signatures_t
from .db import Database, utcnow

__all__ = ["ApiStore", "CallbackRow", "CallbackTarget", "TokenRow"]


@dataclass(frozen=True)
class TokenRow:
    """A bearer token as stored: never its secret, only the secret's hash."""

    id: str
    secret_hash: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    #: what signs callbacks of its requests ("env:NAME", "enc:..."); None: the config's
    callback_secret: str | None = None


@dataclass(frozen=True)
class CallbackRow:
    """One status callback to send to one URL."""

    id: str
    event_id: str
    request_id: str
    url: str
    body: str
    attempts: int
    secret_ref: str | None = None
    #: the ``next_at`` it was claimed at (a claim moves it on)
    next_at: float = 0.0


@dataclass(frozen=True)
class CallbackTarget:
    """Where the events of one request go: its callback URLs (signed with
    ``secret_ref``) and the Zendesk ticket it came from."""

    request_id: str
    subject_request_id: str | None
    urls: tuple[str, ...]
    secret_ref: str | None
    zendesk_ticket: str | None
    cancelled: bool


def _origin(url: str) -> str:
    """What is kept of a callback's URL once it is done with: scheme, host and port (its
    path and query may name the person: ``/hooks?email=...``)."""
    from urllib.parse import urlsplit

    if not url.startswith(("http://", "https://")):
        return url  # zendesk:<ticket id>
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid)"
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname \
        else parts.hostname
    return f"{parts.scheme}://{host}{port}/..."


def callback_target(request_id: str, row: Any) -> CallbackTarget | None:
    """The target of a request from its ``api_requests`` columns; None when it has
    nowhere to tell of its events (no URLs, no Zendesk ticket, or no such row)."""
    urls = tuple(json.loads(row.callback_urls or "[]"))
    if not (urls or row.zendesk_ticket):
        return None
    return CallbackTarget(request_id, row.subject_request_id, urls, row.callback_secret,
                          row.zendesk_ticket, row.cancelled_at is not None)


def _token(row: Any) -> TokenRow:
    return TokenRow(id=row.id, secret_hash=row.secret_hash, scopes=tuple(row.scopes.split()),
                    created_at=row.created_at, expires_at=row.expires_at,
                    revoked_at=row.revoked_at, callback_secret=row.callback_secret)


class ApiStore(Database):
    """The ``api_tokens``, ``api_requests`` and ``callbacks`` tables."""

    # tokens -----------------------------------------------------------------------------

    def add_token(self, token_id: str, secret_hash: str, scopes: Sequence[str],
                  expires_at: datetime | None, callback_secret: str | None = None) -> None:
        with self.tx() as conn:
            conn.execute(insert(api_tokens_t).values(
                id=token_id, secret_hash=secret_hash, scopes=" ".join(scopes),
                created_at=utcnow(), expires_at=expires_at, callback_secret=callback_secret))

    def token(self, token_id: str) -> TokenRow | None:
        with self.read() as conn:  # every API call asks: one round trip, no BEGIN/ROLLBACK
            row = conn.execute(select(api_tokens_t).where(api_tokens_t.c.id == token_id)).first()
        return None if row is None else _token(row)

    def tokens(self) -> list[TokenRow]:
        with self.read() as conn:
            return [_token(r) for r in conn.execute(
                select(api_tokens_t).order_by(api_tokens_t.c.created_at))]

    def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; False when there is no such token (or it was revoked before)."""
        with self.tx() as conn:
            res = conn.execute(update(api_tokens_t).where(
                api_tokens_t.c.id == token_id, api_tokens_t.c.revoked_at.is_(None))
                .values(revoked_at=utcnow()))
        return res.rowcount > 0

    # requests submitted through the API -------------------------------------------------

    def add_api_request(self, conn: Connection, request_id: str,
                        subject_request_id: str | None, callback_urls: Sequence[str], *,
                        callback_secret: str | None = None, zendesk_ticket: str | None = None,
                        caller: str | None = None, fingerprint: str | None = None) -> None:
        """Record what the API call brought with a request, in the transaction that
        records the request (so the runner, which may pick it up at once, finds its
        callback URLs with it, and a request recorded before brings none)."""
        conn.execute(insert(api_requests_t).values(
            request_id=request_id, subject_request_id=subject_request_id,
            callback_urls=json.dumps(list(callback_urls)),
            callback_secret=callback_secret, zendesk_ticket=zendesk_ticket,
            caller=caller, fingerprint=fingerprint))

    def api_request(self, request_id: str) -> dict[str, Any] | None:
        with self.read() as conn:
            row = conn.execute(select(api_requests_t).where(
                api_requests_t.c.request_id == request_id)).first()
        if row is None:
            return None
        return {"subject_request_id": row.subject_request_id,
                "callback_urls": json.loads(row.callback_urls or "[]"),
                "cancelled_at": row.cancelled_at, "zendesk_ticket": row.zendesk_ticket,
                "caller": row.caller, "fingerprint": row.fingerprint}

    def mark_cancelled(self, request_id: str, cancelled: bool = True) -> None:
        """Record the caller's cancellation (before the engine ends the request, so that
        its last callback says cancelled); ``cancelled=False`` takes it back (refused)."""
        when = utcnow() if cancelled else None
        with self.tx() as conn:
            res = conn.execute(update(api_requests_t).where(
                api_requests_t.c.request_id == request_id).values(cancelled_at=when))
            if res.rowcount == 0 and cancelled:
                conn.execute(insert(api_requests_t).values(
                    request_id=request_id, callback_urls="[]", cancelled_at=when))

    def callback_targets(self, conn: Connection, request_ids: Sequence[str]
                         ) -> dict[str, CallbackTarget]:
        """The requests of ``request_ids`` that have somewhere to tell of their events
        (callback URLs or a Zendesk ticket), read in the caller's transaction."""
        out: dict[str, CallbackTarget] = {}
        ids = list(dict.fromkeys(request_ids))
        for i in range(0, len(ids), 900):
            for r in conn.execute(select(api_requests_t).where(
                    api_requests_t.c.request_id.in_(ids[i : i + 900]))):
                target = callback_target(r.request_id, r)
                if target is not None:
                    out[r.request_id] = target
        return out

    def forget_callback_urls(self, conn: Connection, request_ids: Sequence[str]) -> None:
        """Drop the callback URLs of ended requests (in the caller's transaction)."""
        ids = list(dict.fromkeys(request_ids))
        for i in range(0, len(ids), 900):
            conn.execute(update(api_requests_t).where(
                api_requests_t.c.request_id.in_(ids[i : i + 900])).values(callback_urls="[]"))

    # status callbacks -------------------------------------------------------------------

    def queue_callbacks(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Queue callbacks (dicts of ``callbacks`` columns: id, event_id, request_id, url,
        body, next_at, secret_ref) in the caller's transaction: with the change they tell
        of, so none is lost and none is told of a change that was rolled back."""
        if rows:
            conn.execute(insert(callbacks_t), [{"attempts": 0, **r} for r in rows])

    def claim_callbacks(self, now: float, hold: float, limit: int = 100
                        ) -> list[CallbackRow]:
        """The due callbacks, each claimed for ``hold`` seconds (its ``next_at`` moved on,
        only if no other sender moved it first): ``serve``'s sender and an ``erasure run``
        at once do not both post one."""
        q = (select(callbacks_t).where(callbacks_t.c.delivered_at.is_(None),
                                       callbacks_t.c.failed_at.is_(None),
                                       callbacks_t.c.next_at <= now)
             .order_by(callbacks_t.c.next_at, callbacks_t.c.id).limit(limit))
        with self.engine.connect() as conn:
            due = [CallbackRow(id=r.id, event_id=r.event_id, request_id=r.request_id,
                               url=r.url, body=r.body, attempts=r.attempts,
                               secret_ref=r.secret_ref, next_at=r.next_at)
                   for r in conn.execute(q)]
        if not due:
            return []
        claimed = []
        with self.tx() as conn:
            for cb in due:
                res = conn.execute(update(callbacks_t).where(
                    callbacks_t.c.id == cb.id, callbacks_t.c.next_at == cb.next_at,
                    callbacks_t.c.delivered_at.is_(None)).values(next_at=now + hold))
                if res.rowcount:
                    claimed.append(cb)
        return claimed

    def release_callbacks(self, ids: Sequence[str], next_at: float) -> None:
        """Give claimed callbacks back unsent (a sender out of time): due at ``next_at``."""
        if ids:
            with self.tx() as conn:
                conn.execute(update(callbacks_t).where(callbacks_t.c.id.in_(list(ids)))
                             .values(next_at=next_at))

    def callback_sent(self, callback_id: str, url: str) -> None:
        """Delivered: its URL is cut to where it went (``_origin``), the rest forgotten."""
        with self.tx() as conn:
            conn.execute(update(callbacks_t).where(callbacks_t.c.id == callback_id)
                         .values(delivered_at=utcnow(), url=_origin(url),
                                 attempts=callbacks_t.c.attempts + 1))

    def callback_failed(self, callback_id: str, error: str, next_at: float | None,
                        url: str = "") -> None:
        """An attempt failed: try again at ``next_at``, or never (None: given up; its URL
        is cut to where it went, as a delivered one's)."""
        values: dict[str, Any] = {"attempts": callbacks_t.c.attempts + 1,
                                  "last_error": error[:200]}
        if next_at is None:
            values["failed_at"] = utcnow()
            values["url"] = _origin(url)
        else:
            values["next_at"] = next_at
        with self.tx() as conn:
            conn.execute(update(callbacks_t).where(callbacks_t.c.id == callback_id)
                         .values(**values))

    # webhooks ---------------------------------------------------------------------------

    def remember_signature(self, signature: str, now: float, keep: float) -> bool:
        """Record a webhook's signature; False when it was seen before (a replay). Those
        older than ``keep`` seconds (their timestamps now refused as stale) are dropped."""
        try:
            with self.tx() as conn:
                conn.execute(webhook_signatures_t.delete().where(
                    webhook_signatures_t.c.seen_at < now - keep))
                seen = conn.execute(select(webhook_signatures_t.c.signature).where(
                    webhook_signatures_t.c.signature == signature)).first()
                if seen is not None:
                    return False
                conn.execute(insert(webhook_signatures_t).values(signature=signature,
                                                                 seen_at=now))
        except IntegrityError:  # the same call arrived twice at once
            return False
        return True
