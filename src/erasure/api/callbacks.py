"""Status callbacks: the requester's ``status_callback_urls`` are told of every state
change of a request submitted through the API, signed, at least once.

Two halves, so that a slow or absent receiver never holds up a request:

- :class:`CallbackHooks`, a plugin on the runner's hooks (``erasure_task_changed`` and
  ``erasure_request_finished``, delivered from the ledger's outbox after commit), turns each
  event into one queued row per URL in the ledger's ``callbacks`` table, keyed by the
  event id (an event delivered twice queues once);
- :class:`CallbackSender` posts due rows and retries failures with doubling backoff.

A callback body is JSON without personal data: ``{"event_id", "event", "request_id",
"subject_request_id", "status", "system"?, "state"?, "outcome"?, "sent_for"}``. It is
signed like the notify connector's messages: ``X-Erasure-Timestamp: <unix seconds>`` and
``X-Erasure-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pluggy

from ..ledger import Ledger

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "CallbackHooks", "CallbackSender", "sign"]

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("erasure")

TIMESTAMP_HEADER = "X-Erasure-Timestamp"
SIGNATURE_HEADER = "X-Erasure-Signature"
EVENT_HEADER = "X-Erasure-Event-Id"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class CallbackHooks:
    """Queues a callback per URL for each event of a request that has callback URLs."""

    def __init__(self, ledger: Callable[[], Ledger], wake: Callable[[], None]) -> None:
        self._ledger = ledger
        self._wake = wake

    def _queue(self, event_id: str, request_id: str, event: dict[str, Any]) -> None:
        ledger = self._ledger()
        api = ledger.api_request(request_id)
        if not api or not api["callback_urls"]:
            return
        body = {"event_id": event_id, "request_id": request_id,
                "subject_request_id": api["subject_request_id"], **event}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        now = time.time()
        ledger.add_callbacks([{"id": f"{event_id}:{n}", "event_id": event_id,
                               "request_id": request_id, "url": url, "body": text,
                               "next_at": now}
                              for n, url in enumerate(api["callback_urls"])])
        self._wake()

    @hookimpl
    def erasure_task_changed(self, request_id: str, system: str, old: str, new: str,
                             cause: str, event_id: str) -> None:
        """A task moved: its system, the new state, and the request's status."""
        if old == new:
            return  # a deferral: the request's state did not change
        self._queue(event_id, request_id, {"event": "task_changed", "system": system,
                                           "state": new, "status": "in_progress"})

    @hookimpl
    def erasure_request_finished(self, request_id: str, ticket: str | None, outcome: str,
                                 event_id: str) -> None:
        """The request ended: its outcome, and completed or failed."""
        from ..engine.rules import OK_OUTCOMES

        self._queue(event_id, request_id, {
            "event": "request_finished", "outcome": outcome,
            "status": "completed" if outcome in OK_OUTCOMES else "failed"})


class CallbackSender:
    """Posts due callbacks; a failure waits 1 s, 2 s, 4 s ... (at most 10 min) before the
    next attempt, and after ``attempts`` attempts is given up (logged)."""

    def __init__(self, ledger: Ledger, secret: bytes, *, attempts: int = 12,
                 timeout: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.ledger, self.secret = ledger, secret
        self.attempts, self.timeout, self.clock = attempts, timeout, clock

    def send_due(self) -> int:
        """One pass over the due callbacks; returns how many were delivered."""
        sent = 0
        for cb in self.ledger.due_callbacks(self.clock()):
            error = self._post(cb.url, cb.body.encode(), cb.event_id)
            if error is None:
                self.ledger.callback_sent(cb.id)
                sent += 1
                continue
            tries = cb.attempts + 1
            if tries >= self.attempts:
                log.warning("callback %s to a URL of request %s given up after %d "
                            "attempts: %s", cb.event_id, cb.request_id, tries, error)
                self.ledger.callback_failed(cb.id, error, None)
            else:
                self.ledger.callback_failed(cb.id, error,
                                            self.clock() + min(600.0, 2.0 ** (tries - 1)))
        return sent

    def _post(self, url: str, body: bytes, event_id: str) -> str | None:
        """None when the receiver answered 2xx; else why not (no body, no secret)."""
        ts = str(int(self.clock()))
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(self.secret, ts, body), EVENT_HEADER: event_id,
            "User-Agent": "erasure-callbacks"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return type(reason).__name__ if not isinstance(reason, str) else reason[:100]
