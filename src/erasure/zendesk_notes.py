"""The outcome of a request that came from a Zendesk ticket, posted back on the ticket: an
internal note (``public: false``) with the per-system outcome table, the signed receipts
JSON attached (``POST /uploads``, then the comment with the upload's token), and a tag with
the request's type and final status (``dsr_access_completed``, ``dsr_erasure_failed``,
``dsr_erasure_cancelled``: an agent reading the tags of an access request never sees
"erasure").

It is a deliverer of the callback sender (:mod:`.callbacks`): the engine queues a
``zendesk:<ticket id>`` row in the ledger when the request ends, and the sender calls this
with backoff until it succeeds, so a Zendesk outage never holds up a request. The note and
the tag go in one ticket update: a ticket that carries the tag already has its note (a
retry after an answer that was lost posts nothing twice).

The note holds what the receipts hold (system names, outcomes, counts, the request id):
no identifier of the person. zenpy is imported when a note is posted, never before.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Callable
from typing import Any

from .callbacks import Permanent
from .config import ZendeskApiSettings
from .ledger.api import CallbackRow

__all__ = ["ZendeskNotes", "note_html", "status_tag"]

# zenpy builds https://<subdomain>.<domain>/api/v2/...; with ``url`` set it builds this
# placeholder, and the session's adapter sends it to the configured base instead.
_PLACEHOLDER = "https://erasure.zendesk.invalid"


class _Refused(Exception):
    """An answer that is not a success (its status only: bodies may quote the ticket)."""


def status_tag(prefix: str, kind: str | None, status: str) -> str:
    """The tag a request's end sets on its ticket: ``<prefix><type>_<status>``
    (``dsr_access_completed``); a callback queued before types were sent has none."""
    return f"{prefix}{kind}_{status}" if kind else f"{prefix}{status}"


def note_html(event: dict[str, Any], receipts: list[dict[str, Any]]) -> str:
    """The internal note: the request, its status, and a row per system from its receipts
    (outcome and counts; no identifiers)."""
    rows = []
    for r in receipts:
        body = r.get("body") or {}
        counts = body.get("counts") or {}
        cells = [body.get("system"), body.get("outcome"), counts.get("found", 0),
                 counts.get("actionable", 0), counts.get("review", 0),
                 counts.get("residue", 0), len(body.get("errors") or [])]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                    + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("system", "outcome", "found", "acted on",
                                             "left for review", "residue", "errors"))
    request = html.escape(str(event.get("request_id")))
    kind = html.escape(str(event.get("subject_request_type") or "data-subject"))
    return (f"<p>The {kind} request {request} ended: "
            f"<strong>{html.escape(str(event.get('status')))}</strong> "
            f"(outcome {html.escape(str(event.get('outcome')))}).</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "<p>The signed receipts are attached (verify them with <code>erasure receipts "
            "verify --file FILE --subset --public-key KEY</code>).</p>")


class ZendeskNotes:
    """Posts the outcome note of a ``zendesk:<ticket id>`` callback row."""

    def __init__(self, settings: ZendeskApiSettings,
                 receipts: Callable[[str], dict[str, Any]]) -> None:
        self.settings = settings
        self.receipts = receipts
        self._client: Any = None

    def __call__(self, cb: CallbackRow) -> str | None:
        """None once the note is on the ticket; else why not (retried with backoff)."""
        event = json.loads(cb.body)
        ticket_id = int(cb.url.split(":", 1)[1])
        tag = status_tag(self.settings.status_tag_prefix,
                         event.get("subject_request_type"), event["status"])
        exported = self.receipts(cb.request_id)
        data = json.dumps(exported, indent=2, sort_keys=True).encode()
        try:
            self._post(ticket_id, tag, note_html(event, exported["receipts"]), data,
                       f"erasure-receipts-{cb.request_id}.json")
            return None
        except Exception as exc:  # classified by type and status only, then retried
            self._client = None
            return _describe(exc)

    def _post(self, ticket_id: int, tag: str, note: str, data: bytes, name: str) -> None:
        from zenpy.lib.api_objects import Comment, Ticket

        client = self._zenpy()
        if tag in (client.tickets(id=ticket_id).tags or []):
            return  # the note went with this tag: posted before
        upload = client.attachments.upload(io.BytesIO(data), target_name=name,
                                           content_type="application/json")
        update = Ticket(id=ticket_id)
        update.comment = Comment(html_body=note, public=False, uploads=[upload.token])
        update.additional_tags = [tag]
        client.tickets.update(update)

    def _zenpy(self) -> Any:
        if self._client is not None:
            return self._client
        import requests
        from requests.adapters import HTTPAdapter
        from zenpy import Zenpy

        s = self.settings
        session = requests.Session()
        for prefix in ("https://", "http://"):
            session.mount(prefix, HTTPAdapter(max_retries=0))
        if s.url is not None:
            session.mount(_PLACEHOLDER + "/", _rebase(s.url))
        # zenpy would sleep through a 429 for as long as Retry-After says: in the sender's
        # thread that would hold every other callback; the sender's backoff waits instead
        session.hooks["response"].append(_refuse_rate_limit)
        auth: dict[str, Any] = (
            {"oauth_token": s.oauth_token.get_secret_value()} if s.oauth_token is not None
            else {"email": s.email,
                  "token": s.token.get_secret_value() if s.token is not None else ""})
        sub, domain = ((s.subdomain, "zendesk.com") if s.subdomain
                       else ("erasure", "zendesk.invalid"))
        self._client = Zenpy(subdomain=sub, domain=domain, session=session,
                             timeout=s.timeout, disable_cache=True, **auth)
        return self._client


def _refuse_rate_limit(response: Any, *args: Any, **kwargs: Any) -> Any:
    if response.status_code == 429:
        raise _Refused("HTTP 429")
    return response


#: answers no later attempt changes: the ticket does not exist, or was deleted; retrying
#: would only spend the attempts (and the rate limit). A refused token (401, 403) stays
#: retried: an operator who fixes it gets the notes posted.
_PERMANENT = {404: "no such ticket", 410: "the ticket was deleted"}


def _describe(exc: Exception) -> str:
    """Why posting failed, without any response body; :class:`Permanent` when no retry
    can help (given up at once, the reason kept on the callback's row)."""
    if isinstance(exc, _Refused):
        return f"zendesk: {exc}"
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status in _PERMANENT:
        return Permanent(f"zendesk: HTTP {status} ({_PERMANENT[status]}): not retried")
    return f"zendesk: HTTP {status}" if status else f"zendesk: {type(exc).__name__}"


def _rebase(base: str) -> Any:
    from requests.adapters import HTTPAdapter

    class Rebase(HTTPAdapter):
        """Sends zenpy's placeholder URLs to the configured base."""

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            placeholder = request.url
            if placeholder.startswith(_PLACEHOLDER):
                request.url = base.rstrip("/") + placeholder[len(_PLACEHOLDER):]
            response = super().send(request, *args, **kwargs)
            # zenpy parses only answers whose request URL is under its own base
            response.request.url = placeholder
            return response

    return Rebase(max_retries=0)
