"""Status callbacks: the ``status_callback_urls`` of a request submitted through the HTTP
API are told of every state change of the request, signed, at least once, whichever
process ran it (``erasure serve``'s runner, ``erasure run`` from cron, a worker).

Two halves, so that a slow or absent receiver never holds up a request:

- :func:`queue`, called by the engine in the transaction that writes a change (a task's
  move, a request's end), adds one row per URL to the ledger's ``callbacks`` table: the
  change and its callback commit together, so none is lost and none tells of a change that
  was rolled back;
- :class:`CallbackSender` posts due rows and retries failures with doubling backoff; it
  runs in ``erasure serve`` (a thread) and at the end of ``erasure run`` (for a bounded
  time, after the run's work).

A callback body is JSON without personal data: ``{"event_id", "event", "time",
"request_id", "subject_request_id", "status", "system"?, "state"?, "outcome"?,
"systems"?}``. It is signed with the request's secret (its own, its token's, or
``[erasure.api] callback_secret``): ``X-Erasure-Timestamp: <unix seconds>`` and
``X-Erasure-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``, like the
notify connector's messages. The ``X-Erasure-Event-Id`` header repeats the event id.

A row whose URL is ``zendesk:<ticket id>`` is the outcome note posted back on the Zendesk
ticket a request came from; a deliverer given to the sender posts it (same retries).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .errors import ConfigError
from .keys import KeyRing
from .ledger import Ledger
from .ledger.api import CallbackRow, CallbackTarget

__all__ = ["EVENT_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "CallbackSender",
           "Permanent", "Secrets", "queue", "refused_host", "refused_url", "sign"]

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Erasure-Timestamp"
SIGNATURE_HEADER = "X-Erasure-Signature"
EVENT_HEADER = "X-Erasure-Event-Id"
#: the URL scheme of an outcome note on a Zendesk ticket
ZENDESK = "zendesk:"

#: a deliverer of rows of another kind than http(s): None when done, else why not (a
#: :class:`Permanent` reason: not worth another attempt)
Deliverer = Callable[[CallbackRow], "str | None"]


def refused_url(url: str) -> str | None:
    """Why ``url`` may not receive callbacks (None: it may), by its text alone (no DNS): an
    http(s) URL without a user or password (they would be stored and sent in plain text:
    sign with a secret instead) or fragment, whose host is not a link-local, multicast or
    unspecified address (169.254.169.254 is a cloud's metadata service: SSRF). Loopback and
    private networks are allowed: a helpdesk bridge often runs beside the server."""
    import ipaddress
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        return "must be an http(s) URL"
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        return "must be an http(s) URL"
    if "@" in parts.netloc:
        return ("must not carry a user or password (sign callbacks with "
                "status_callback_secret instead)")
    if parts.fragment or url.endswith("#"):
        return "must not carry a fragment (#...)"
    try:
        ip = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None  # a name: its addresses are checked when sending
    return _refused_address(ip)


def _refused_address(ip: Any) -> str | None:
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped or ip
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return ("must not go to a link-local, multicast or reserved address "
                "(169.254.0.0/16, fe80::/10: metadata services)")
    return None


def refused_host(url: str) -> str | None:
    """Why ``url``'s host may not be called now, by the addresses it resolves to (a name
    may point at a metadata service); None when it may (or does not resolve: the post
    fails and is retried)."""
    import ipaddress
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        why = _refused_address(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        if why is not None:
            return f"callback URL refused: its host resolves to an address that {why[4:]}"
    return None


class Permanent(str):
    """Why a delivery failed, when no later attempt can succeed (a Zendesk ticket that does
    not exist): given up at once instead of retried."""


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def queue(ledger: Ledger, conn: Any, events: Sequence[dict[str, Any]],
          now: float | None = None, *,
          targets: Mapping[str, CallbackTarget] | None = None) -> None:
    """Queue a callback per URL for each of ``events`` whose request has callback URLs (or
    a Zendesk ticket: its end becomes the outcome note), in the caller's transaction.

    An event is ``{"request_id", "event": "task_changed", "system", "state"}`` or
    ``{"request_id", "event": "request_finished", "outcome", "ok", "systems"}``.
    ``targets``: the requests' targets, when the caller read them in this transaction
    (:meth:`~.ledger.Ledger.fenced`); else they are read here.
    """
    if not events:
        return
    if targets is None:
        targets = ledger.callback_targets(conn, [e["request_id"] for e in events])
    if not targets:
        return
    now = time.time() if now is None else now
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
    rows: list[dict[str, Any]] = []
    for e in events:
        target = targets.get(e["request_id"])
        if target is None:
            continue
        event_id = str(uuid.uuid4())
        body = {k: v for k, v in e.items() if k != "ok"}
        if e["event"] == "request_finished":
            body["status"] = ("cancelled" if target.cancelled
                              else "completed" if e["ok"] else "failed")
        else:
            body["status"] = "in_progress"
        body.update(event_id=event_id, time=stamp,
                    subject_request_id=target.subject_request_id)
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        urls = list(target.urls)
        if target.zendesk_ticket and e["event"] == "request_finished":
            urls.append(ZENDESK + target.zendesk_ticket)
        # next_at grows by a microsecond a row: the first attempts go out in the order
        # the changes happened
        rows.extend({"id": f"{event_id}:{n}", "event_id": event_id,
                     "request_id": e["request_id"], "url": url, "body": text,
                     "next_at": now + len(rows) * 1e-6 + n * 1e-7,
                     "secret_ref": None if url.startswith(ZENDESK) else target.secret_ref}
                    for n, url in enumerate(urls))
    ledger.queue_callbacks(conn, rows)
    # A request's end purges its identifiers; its callback URLs (which may carry a query
    # naming the person) go with them: the last events are queued, nothing else will be.
    ledger.forget_callback_urls(conn, [e["request_id"] for e in events
                                       if e["event"] == "request_finished"])


class Secrets:
    """What signs callbacks: a reference stored with a request or token (``env:NAME``,
    read when sending; ``enc:<token>``, sealed with the master key), else the config's
    ``callback_secret``."""

    def __init__(self, default: bytes | None, keys: KeyRing,
                 env: Mapping[str, str] | None = None) -> None:
        self.default, self.keys = default, keys
        self.env = os.environ if env is None else env

    def seal(self, secret: str) -> str:
        """The reference that keeps ``secret`` (encrypted under the master key)."""
        return "enc:" + self.keys.encrypt(secret.encode()).decode("ascii")

    def get(self, ref: str | None) -> bytes:
        """The secret of ``ref``; ConfigError (naming no value) when there is none."""
        if ref is None:
            if self.default is None:
                raise ConfigError("no callback secret: set [erasure.api] callback_secret")
            return self.default
        kind, _, rest = ref.partition(":")
        if kind == "env":
            value = self.env.get(rest)
            if not value:
                raise ConfigError(f"callback secret env {rest} is not set")
            return value.encode()
        if kind == "enc":
            return self.keys.decrypt(rest.encode("ascii"))
        raise ConfigError("unknown callback secret reference")


class CallbackSender:
    """Posts due callbacks; a failure waits 1 s, 2 s, 4 s ... (at most 10 min) before the
    next attempt, and after ``attempts`` attempts is given up (logged)."""

    def __init__(self, ledger: Ledger, secrets: Secrets, *, attempts: int = 12,
                 timeout: float = 5.0, clock: Callable[[], float] = time.time,
                 deliverers: Mapping[str, Deliverer] | None = None) -> None:
        self.ledger, self.secrets = ledger, secrets
        self.attempts, self.timeout, self.clock = attempts, timeout, clock
        self.deliverers = dict(deliverers or {})

    def send_due(self, deadline: float | None = None) -> int:
        """One pass over the due callbacks (stopping at ``deadline``, a ``clock`` time:
        those not tried are given back due); returns how many were delivered."""
        sent = 0
        # held long enough for every post of the pass to time out once
        claimed = self.ledger.claim_callbacks(self.clock(), 60 + 100 * self.timeout)
        for n, cb in enumerate(claimed):
            if deadline is not None and self.clock() >= deadline:
                self.ledger.release_callbacks([c.id for c in claimed[n:]], self.clock())
                break
            if cb.url.startswith(ZENDESK) and "zendesk" not in self.deliverers:
                # a process that cannot post notes (no [erasure.api.zendesk] or zenpy here)
                # leaves them to one that can, without using up their attempts
                self.ledger.release_callbacks([cb.id], self.clock() + 60)
                continue
            error = self._deliver(cb)
            if error is None:
                self.ledger.callback_sent(cb.id, cb.url)
                sent += 1
                continue
            tries = cb.attempts + 1
            if tries >= self.attempts or isinstance(error, Permanent):
                log.warning("callback %s of request %s given up after %d attempts: %s",
                            cb.event_id, cb.request_id, tries, error)
                self.ledger.callback_failed(cb.id, error, None, cb.url)
            else:
                self.ledger.callback_failed(cb.id, error,
                                            self.clock() + min(600.0, 2.0 ** (tries - 1)))
        return sent

    def send_for(self, seconds: float) -> int:
        """Passes until nothing is due or ``seconds`` are up (``erasure run``'s end)."""
        deadline = self.clock() + seconds
        sent = 0
        while self.clock() < deadline:
            before = sent
            sent += self.send_due(deadline)
            if sent == before:
                break  # nothing delivered: the rest is due later
        return sent

    def _deliver(self, cb: CallbackRow) -> str | None:
        if cb.url.startswith(ZENDESK):
            return self.deliverers["zendesk"](cb)
        why = refused_url(cb.url)
        why = (f"callback URL refused: it {why}" if why is not None
               else refused_host(cb.url))
        if why is not None:
            return Permanent(why)
        try:
            secret = self.secrets.get(cb.secret_ref)
        except ConfigError as exc:
            return str(exc)
        return self._post(cb.url, cb.body.encode(), cb.event_id, secret)

    def _post(self, url: str, body: bytes, event_id: str, secret: bytes) -> str | None:
        """None when the receiver answered 2xx; else why not (no body, no secret)."""
        ts = str(int(time.time()))
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(secret, ts, body), EVENT_HEADER: event_id,
            "User-Agent": "erasure-callbacks"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return type(reason).__name__ if not isinstance(reason, str) else reason[:100]
