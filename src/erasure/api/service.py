"""What each route of the HTTP API does, without HTTP: it turns bodies into the
orchestrator's calls and the ledger's rows into answers. No engine logic here: requests are
recorded with :meth:`Orchestrator.submit` and processed by the same runner as ``erasure
run``; cancel and confirm are the engine's own commands.

Errors are :class:`ApiError` (status code and a one-line message without personal data);
the HTTP layer turns them into responses.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..engine.rules import OK_OUTCOMES
from ..engine.tasks import Stage, TaskSummary
from ..errors import ErasureError, UsageError
from ..ledger.api import TokenRow
from ..orchestrator import Orchestrator, RequestSpec
from .schemas import RequestStatus, SubmitRequest, SystemState

__all__ = ["ApiError", "ApiService"]


class ApiError(Exception):
    """An answer other than success: ``status`` and a one-line ``message``; a 422 may
    name the field (``loc``, as the field errors of a malformed body do)."""

    def __init__(self, status: int, message: str,
                 loc: tuple[str | int, ...] = ("body",)) -> None:
        super().__init__(message)
        self.status, self.message, self.loc = status, message, loc


def _naive_utc(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)


def _usage(exc: ErasureError, *, missing: int = 404, refused: int = 409) -> ApiError:
    """A UsageError of the orchestrator as an answer: no such request 404, else ``refused``."""
    text = str(exc)
    if text.startswith("no request "):
        return ApiError(missing, "no such request")
    return ApiError(refused, text)


class ApiService:
    """The routes' work over one orchestrator. ``wake`` tells the runner (another process)
    there is work; ``run_lock`` serialises the runs this process starts itself (a cancel, a
    confirmation), which share the orchestrator's systems. The runner process's runs and
    these share the ledger as any two runners do, through leases."""

    def __init__(self, orch: Orchestrator, *, wake: Callable[[], None] = lambda: None) -> None:
        self.orch = orch
        self.wake = wake
        self.run_lock = threading.Lock()

    # intake -----------------------------------------------------------------------------

    def submit(self, body: SubmitRequest, idempotency_key: str | None,
               token: TokenRow | None = None, *, zendesk_ticket: int | None = None
               ) -> tuple[RequestStatus, bool]:
        """Record a request (or find the one recorded before under the same
        subject_request_id or Idempotency-Key); (its status, whether it is new).
        ``token`` (the caller's) may bring the secret that signs its callbacks."""
        from ..models import RequestType

        body = self._phones_read(body)
        space = body.id_space
        identifiers = tuple(
            (i.identity_type, i.identity_value, space)
            if space and i.identity_type in ("customer_id", "user_id")
            else (i.identity_type, i.identity_value)
            for i in body.subject_identities)
        spec = RequestSpec(
            type=RequestType(body.subject_request_type), identifiers=identifiers,
            ticket=body.ticket, verified=body.verified,
            received_at=_naive_utc(body.submitted_time),
            request_key=f"api:{idempotency_key or body.subject_request_id}",
            corrections=tuple((c.type, c.value) for c in body.corrections),
            objection_scope=body.scope,
            wording="zendesk" if zendesk_ticket is not None else "api")
        from ..callbacks import refused_url

        for n, url in enumerate(body.status_callback_urls):
            why = refused_url(url)
            if why is not None:
                raise ApiError(422, f"status_callback_urls[{n}]: {why}")
        secret_ref = self._callback_secret(body, token)
        ledger = self.orch.ledger
        caller = "zendesk" if zendesk_ticket is not None else (
            token.id if token is not None else None)
        fingerprint = self._fingerprint(body)
        fresh = f"r-{uuid.uuid4().hex[:16]}"

        def callback_row(conn: Any, new_ids: list[str]) -> None:
            # In the request's own transaction: the runner may pick it up at once, and its
            # first events must find the URLs; a request recorded before keeps the first
            # submission's URLs (no row is written for this one).
            if fresh in new_ids:
                ledger.add_api_request(conn, fresh, body.subject_request_id,
                                       body.status_callback_urls, callback_secret=secret_ref,
                                       zendesk_ticket=None if zendesk_ticket is None
                                       else str(zendesk_ticket), caller=caller,
                                       fingerprint=fingerprint)

        try:
            rid = self.orch.submit_many([replace(spec, request_id=fresh)],
                                        also=callback_row)[0]
        except UsageError as exc:
            raise ApiError(422, str(exc)) from None
        new = rid == fresh
        if new:
            self.wake()
        else:  # recorded before: the first submission's URLs stand
            self._same_request(rid, body, idempotency_key, caller, fingerprint,
                               zendesk_ticket)
        return self.status(rid), new

    def _phones_read(self, body: SubmitRequest) -> SubmitRequest:
        """``body`` with its phones in international form: one written in the national
        form of ``[erasure] default_phone_region`` (as a person gives it on a ticket) is
        read with that region, as the CLI's ``--phone`` is; without a region it is refused
        (422 naming the item), never searched for as written."""
        from ..models import Identifier
        from ..phonetext import national_phone

        region = self.orch.config.host.default_phone_region
        identities = list(body.subject_identities)
        for n, ident in enumerate(identities):
            if ident.identity_type != "phone":
                continue
            try:
                value = national_phone(ident.identity_value, region)
                Identifier.parse("phone", value)
            except UsageError as exc:
                raise ApiError(422, str(exc), loc=(
                    "body", "subject_identities", n, "identity_value")) from None
            identities[n] = ident.model_copy(update={"identity_value": value})
        return body.model_copy(update={"subject_identities": identities})

    def _fingerprint(self, body: SubmitRequest) -> str:
        """A keyed hash of what a submission asks for (its id, type, identifiers, id
        space, ticket, corrections, scope): a retry of it hashes the same. Not its
        submitted_time, callbacks or verified flag: a retry may differ in those."""
        import json

        what = body.model_dump(mode="json", include={
            "subject_request_id", "subject_request_type", "subject_identities", "id_space",
            "ticket", "corrections", "scope"})
        what["subject_identities"] = sorted(
            (i["identity_type"], i["identity_value"]) for i in what["subject_identities"])
        return self.orch.keys.digest("api-request", json.dumps(what, sort_keys=True))

    def _same_request(self, rid: str, body: SubmitRequest, idempotency_key: str | None,
                      caller: str | None, fingerprint: str, zendesk_ticket: int | None
                      ) -> None:
        """409 unless the request recorded before under this submission's key (rid) is
        the one it asks for again, from the same caller: a key reused for another request
        (or by another token) must not answer with the first one as if it were done."""
        before = self.orch.ledger.api_request(rid) or {}
        if before.get("fingerprint") is None:
            return  # recorded before callers and fingerprints were kept
        if zendesk_ticket is not None:
            if before.get("caller") == caller and before["fingerprint"] == fingerprint:
                return
            raise ApiError(409, f"ticket ZD-{zendesk_ticket} already has "
                                f"{_a(body.subject_request_type)} request {rid} for other "
                                "identifiers (the requester or identifier fields changed): "
                                "a request for other identifiers needs its own ticket")
        key = ("Idempotency-Key" if idempotency_key
               else f"subject_request_id {body.subject_request_id!r}")
        if before.get("caller") != caller:
            # another token's request: neither its id nor what it is shows here
            raise ApiError(409, f"{key} is already used by another token's request: "
                                "use a key of your own")
        if before["fingerprint"] != fingerprint:
            row = self.orch.ledger.get_request(rid)
            field = "Idempotency-Key" if idempotency_key else "subject_request_id"
            raise ApiError(409, f"{key} already names request {rid} ({row.type}) and this "
                                "one differs from it (type, identities, ticket or id): a "
                                f"new request needs a new {field}")

    def zendesk(self, headers: Mapping[str, str], body: bytes) -> tuple[RequestStatus, bool]:
        """A Zendesk webhook: verified (signature, freshness, no replay), its ticket turned
        into a request as POST /v1/requests records one, once per ticket and type (the same
        ticket and type with other identifiers: 409); its outcome is
        posted back on the ticket when it ends (queued by the engine)."""
        from .zendesk import WebhookRefused, parse, to_request, verify

        settings = self.orch.config.host.api.zendesk
        if settings is None:
            raise ApiError(404, "no Zendesk trigger configured ([erasure.api.zendesk])")
        try:
            verify(settings, self.orch.ledger, headers, body)
            ticket = parse(body)
            request = to_request(settings, ticket)
        except WebhookRefused as exc:
            raise ApiError(exc.status, exc.message) from None
        return self.submit(request, None, zendesk_ticket=ticket.id)

    def _callback_secret(self, body: SubmitRequest, token: TokenRow | None) -> str | None:
        """What signs the request's callbacks: its own secret, its token's, or (None) the
        config's; 422 when it names callback URLs and there is none."""
        if body.status_callback_secret is not None:
            return self.orch.callback_secrets().seal(
                body.status_callback_secret.get_secret_value())
        if token is not None and token.callback_secret:
            return token.callback_secret
        if body.status_callback_urls and self.orch.config.host.api.callback_secret is None:
            raise ApiError(422, "status_callback_urls need a signing secret: give "
                                "status_callback_secret, a token made with one, or set "
                                "[erasure.api] callback_secret")
        return None

    # reads ------------------------------------------------------------------------------

    def status(self, request_id: str) -> RequestStatus:
        """A request's status, its systems' states and what they wait on."""
        try:  # one statement: a client polls this
            row, api, tasks = self.orch.ledger.request_view(request_id)
        except UsageError as exc:
            raise _usage(exc) from None
        tasks = sorted(tasks, key=lambda t: t.system)
        systems = [_system_state(t.system, t.stage, t.outcome, t.summary, t.not_before,
                                 row.status) for t in tasks]
        if api.get("cancelled_at") is not None:
            status = "cancelled"
        elif row.status == "done":
            status = "completed" if row.outcome in OK_OUTCOMES else "failed"
        elif row.status == "open" and all(t.stage == Stage.PENDING.value and not t.summary
                                          for t in tasks):
            status = "pending"
        else:
            status = "in_progress"
        base = f"/v1/requests/{request_id}"
        links = {"self": base, "receipts": f"{base}/receipts"}
        if row.type in ("access", "portability"):
            links["package"] = f"{base}/package"
        return RequestStatus(
            id=row.id, subject_request_id=api.get("subject_request_id"),
            subject_request_type=row.type, ticket=row.ticket, status=status,
            outcome=row.outcome, received_time=row.received_at, due_time=row.due_at,
            finished_time=row.finished_at, systems=systems, links=links)

    def by_ticket(self, ticket: str) -> list[RequestStatus]:
        return [self.status(rid) for rid in self.orch.ledger.request_ids_by_ticket(ticket)]

    def receipts(self, request_id: str) -> dict[str, Any]:
        """The request's signed receipts with the chain's signed head and the public key,
        as ``erasure receipts export --request`` writes them (verify with --subset)."""
        from ..heads import export

        self.status(request_id)  # 404 for an unknown id
        try:
            return export(self.orch.chain, request_id)
        except ErasureError as exc:  # the ledger was cut back behind a signed head
            raise ApiError(500, str(exc)) from None

    def package(self, request_id: str) -> tuple[Any, str]:
        """An access or portability request's package (a zip), given out as ``erasure
        package get`` gives it: recorded delivered (a package of a person erased since is
        deleted once delivered). (a spooled file at its start, the file's name)."""
        import tempfile

        row = self.status(request_id)
        if row.subject_request_type not in ("access", "portability"):
            raise ApiError(404, "only access and portability requests have a package")
        sink = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        try:
            got = self.orch.deliver_package(request_id, sink)  # type: ignore[arg-type]
        except ErasureError as exc:
            sink.close()
            raise ApiError(404, str(exc)) from None
        sink.seek(0)
        return sink, Path(got["file"]).name

    def public_key(self) -> dict[str, str]:
        return {"public_key": self.orch.keys.public_text, "key_id": self.orch.keys.key_id}

    def chain_head(self) -> dict[str, Any]:
        """The receipt chain's end with its signed head (publish it; verify against it)."""
        from ..heads import ledger_export

        try:
            count, last = self.orch.chain.ensure_head()
        except ErasureError as exc:  # the ledger was cut back behind a signed head
            raise ApiError(500, str(exc)) from None
        head = ledger_export(self.orch.ledger, "")["head"]
        return {"count": count, "last": last, "head": head}

    def ready(self) -> None:
        """Raise ApiError 503 unless the ledger answers."""
        from sqlalchemy import text

        try:
            with self.orch.ledger.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            raise ApiError(503, "the ledger database is unavailable") from None

    # commands ---------------------------------------------------------------------------

    def cancel(self, request_id: str) -> RequestStatus:
        """Withdraw a request nothing was done for yet (409 once a system acted)."""
        self.status(request_id)
        ledger = self.orch.ledger
        before = (ledger.api_request(request_id) or {}).get("cancelled_at")
        # recorded first: the request's last status callback, written as it ends, says so
        ledger.mark_cancelled(request_id)
        with self.run_lock:
            try:
                self.orch.cancel(request_id)
            except UsageError as exc:
                if before is None:
                    ledger.mark_cancelled(request_id, False)
                raise _usage(exc) from None
        return self.status(request_id)

    def confirm(self, system: str, headers: Mapping[str, str], body: bytes) -> list[str]:
        """A processor's signed confirmation: verified by the system's connector, then
        recorded for each request it names that awaits it (as ``erasure confirm`` does);
        returns the requests confirmed now (a repeat confirms none)."""
        s = self.orch.systems.get(system)
        verify = getattr(s.connector(), "confirmation", None) if s and not s.uncovered \
            else None
        if verify is None:
            raise ApiError(404, f"no system {system!r} that takes signed confirmations")
        try:
            conf = verify(headers, body)
        except ErasureError as exc:
            raise ApiError(400, f"confirmation refused: {exc}") from None
        except Exception as exc:
            # the connector's own "invalid signature" (its message names no value)
            raise ApiError(401, f"confirmation refused: {exc}") from None
        done = []
        for request_id in conf.requests:
            try:
                row = self.orch.get_request(request_id)
            except UsageError:
                continue
            stages = {t.system: t.stage for t in self.orch.ledger.tasks_for([request_id])}
            if row.status == "done" or stages.get(system) != Stage.AWAITING_CONFIRMATION.value:
                continue  # confirmed before, or ended: a processor may post twice
            with self.run_lock:
                try:
                    self.orch.confirm(request_id, system, conf.reference)
                except UsageError as exc:
                    raise ApiError(409, str(exc)) from None
            done.append(request_id)
        return done


def _a(word: str) -> str:
    """``word`` with its article (an access, an erasure, a restriction)."""
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _system_state(system: str, stage: str, outcome: str | None, summary_text: str | None,
                  not_before: float | None, request_status: str) -> SystemState:
    """One task as the API shows it; ``waits`` says what it waits on, without personal
    data (errors are classified messages)."""
    summary = TaskSummary.from_text(summary_text)
    waits = None
    now = datetime.now(UTC).timestamp()
    blocked = bool(summary.blocked) and stage != Stage.DONE.value
    if stage != Stage.DONE.value:
        if blocked:
            # its not_before is when it is given up (the due date's margin), not when it
            # goes on: said here, not shown as a time it waits for
            until = ("" if not not_before else " (else it fails at " + datetime.fromtimestamp(
                not_before, UTC).isoformat(timespec="seconds") + ")")
            waits = (f"an operator's `erasure retry` after: {summary.blocked}{until}")
        elif stage == Stage.AWAITING_CONFIRMATION.value:
            waits = "the processor's confirmation"
        elif stage == Stage.WAITING.value:
            waits = "the system to finish its job"
        elif request_status == "awaiting_approval":
            waits = "approval (`erasure approve`)"
        elif not_before and not_before > now:
            waits = "a later attempt" + (f" after: {summary.last_error}"
                                         if summary.last_error else "")
        else:
            waits = "the runner"
    due = (datetime.fromtimestamp(not_before, UTC).replace(tzinfo=None)
           if not_before and stage != Stage.DONE.value and not blocked else None)
    return SystemState(system=system, state="blocked" if blocked else stage,
                       outcome=outcome, waits=waits, not_before=due)
