"""The HTTP layer (FastAPI): routes, bearer-token scopes and error answers (the body limit
and the access log are :mod:`.middleware`). It only parses and calls
:class:`~.service.ApiService`; imported by ``erasure serve`` alone.

Every error answer is ``{"detail": ...}``: a one-line message, or for a malformed body
(422) the list of field errors (where and what, never the value sent). No stack trace
leaves the server; an unexpected error is logged by type and answered 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..ledger import Ledger
from ..ledger.api import TokenRow
from .middleware import AccessLog, BodyLimit
from .schemas import FieldErrors, Problem, RequestStatus, SubmitRequest
from .service import ApiError, ApiService
from .tokens import TokenCheck, check_token

__all__ = ["create_app"]

log = logging.getLogger("erasure.api")

_bearer = HTTPBearer(auto_error=False, description="A token from `erasure tokens create`.")

_R = TypeVar("_R")


class _Caller:
    """The caller of a route that needs a token with ``scope``. The check reads the ledger,
    so it runs in a worker thread, in the same hop as the route's work (:meth:`run`): one
    hop per request, not one for the check and one for the work."""

    __slots__ = ("header", "ledger", "scope")

    def __init__(self, ledger: Ledger, scope: str, header: str | None) -> None:
        self.ledger, self.scope, self.header = ledger, scope, header

    def check(self) -> TokenRow:
        """The token's row; ApiError 401 (no valid token) or 403 (not this scope)."""
        row, why = check_token(self.ledger, self.header, self.scope)
        if why == TokenCheck.SCOPE:
            raise ApiError(403, f"{why} {self.scope!r}")
        if why is not None or row is None:
            raise ApiError(401, why or TokenCheck.UNKNOWN)
        return row

    async def run(self, work: Callable[[TokenRow], _R]) -> _R:
        """``work(token row)`` after the check, in one worker thread."""
        return await run_in_threadpool(self._checked, work)

    def _checked(self, work: Callable[[TokenRow], _R]) -> _R:
        return work(self.check())


#: where a route's caller waits in the request's scope until its token is checked: a 422
#: of the parameters or body is answered only after the check (a bad token is refused
#: before its body is looked at, as when the check was a dependency of its own)
_UNCHECKED = "erasure.unchecked_caller"

_STATUS = TypeAdapter(RequestStatus)
_STATUSES = TypeAdapter(list[RequestStatus])
_OBJECT = TypeAdapter(dict[str, Any])


def _json(adapter: TypeAdapter[Any], value: Any, status_code: int = 200) -> Response:
    """``value``, already valid, as the body FastAPI's response_model would make of it
    (the same pydantic serialiser, by alias), without FastAPI validating it again."""
    return Response(adapter.dump_json(value, by_alias=True), status_code=status_code,
                    media_type="application/json")


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # FastAPI's default answer echoes the value sent ("input"): an identifier must not
    # come back in an error body (proxies log those).
    return [{"loc": list(e.get("loc", ())), "type": e.get("type", ""),
             "msg": e.get("msg", "").removeprefix("Value error, ")} for e in exc.errors()]


#: what each error answer means, for the OpenAPI document (every route declares the codes it
#: can answer, so a client generated from the document knows each body's shape)
_WHY = {
    400: "The confirmation could not be read.",
    401: "No valid bearer token (missing, unknown, expired or revoked).",
    403: "The token lacks the scope this route needs.",
    404: "No such request (or nothing of that kind for it).",
    409: "Refused in the request's present state, or the key (subject_request_id, "
         "Idempotency-Key, ticket and type) names another request.",
    413: "The body is larger than the configured limit.",
    422: "Malformed body or parameters: the field errors.",
    500: "The ledger disagrees with its signed head (see docs/receipts.md).",
    503: "The ledger database is unavailable.",
}


def _answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": FieldErrors if c == 422 else Problem, "description": _WHY[c]}
            for c in codes}


def create_app(service: ApiService, *, max_body_bytes: int = 64 * 1024) -> FastAPI:
    """The application over ``service``."""
    app = FastAPI(
        title="erasure", version="1",
        description="Data-subject requests from a ticketing workflow (docs/api.md).")
    ledger = service.orch.ledger

    def scope(name: str) -> Any:
        # HTTPBearer puts the scheme in the OpenAPI document; the token is checked by the
        # route itself (_Caller.run): no ledger read here, on the event loop
        async def caller(request: Request, _: Any = Depends(_bearer)) -> _Caller:
            found = _Caller(ledger, name, request.headers.get("authorization"))
            request.scope[_UNCHECKED] = found
            return found
        return Depends(caller)

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        detail: Any = exc.message
        if exc.status == 422:  # every 422 has one shape: field errors
            detail = [{"loc": list(exc.loc), "msg": exc.message, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        unchecked = request.scope.pop(_UNCHECKED, None)
        if unchecked is not None:  # the token first: 401/403 before any field error
            try:
                await run_in_threadpool(unchecked.check)
            except ApiError as refused:
                return await _api_error(request, refused)
        return JSONResponse({"detail": _field_errors(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's one 400 of its own: a body that is not JSON at all (bytes that are
            # not UTF-8). A malformed body is a 422 with field errors, as every route says.
            return JSONResponse({"detail": [{"loc": ["body"], "type": "json_invalid",
                                             "msg": "the body is not JSON"}]}, status_code=422)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # every method the path takes (Starlette names only its first route's)
            headers["Allow"] = ", ".join(sorted(
                m for r in app.routes if isinstance(r, APIRoute)
                and r.path_regex.match(request.url.path) for m in r.methods or ()))
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # by type only: an exception's message may carry a value from the request
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    submit, read, package = scope("submit"), scope("read"), scope("package")

    by_token = (401, 403, 422)
    with_id = (*by_token, 404)

    # OpenAPI links: a client (and schemathesis' stateful tests) follows a submission to
    # the routes of the request it made
    links = {name: {"operationId": name, "parameters": {"request_id": "$response.body#/id"}}
             for name in ("get_request", "cancel_request", "get_receipts", "get_package")}

    # Every route that needs a token is async and does its work with the check in one
    # worker thread (caller.run); what it answers is already valid, so it answers it as
    # JSON itself (_json) and FastAPI does not validate it a second time: response_model
    # stays for the OpenAPI document.

    @app.post("/v1/requests", response_model=RequestStatus, status_code=201,
              operation_id="submit_request", responses={
                  200: {"model": RequestStatus, "description": "recorded before",
                        "links": links},
                  201: {"description": "recorded", "links": links},
                  **_answers(*by_token, 409, 413)})
    async def create_request(body: SubmitRequest,
                             idempotency_key: Annotated[str | None, Header(
                                 max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")] = None,
                             caller: _Caller = submit) -> Response:
        """Record a request; the runner processes it. The same request again (same
        subject_request_id or Idempotency-Key, same contents, same token) returns the
        request recorded before (200); the key reused for another request, or by another
        token, is refused (409)."""
        status, new = await caller.run(
            lambda token: service.submit(body, idempotency_key, token))
        return _json(_STATUS, status, 201 if new else 200)

    @app.get("/v1/requests", response_model=list[RequestStatus],
             operation_id="list_requests", responses=_answers(*by_token))
    async def list_requests(ticket: Annotated[str, Query(min_length=1, max_length=200)],
                            caller: _Caller = read) -> Response:
        """The requests recorded with a ticket reference."""
        return _json(_STATUSES, await caller.run(lambda _: service.by_ticket(ticket)))

    @app.get("/v1/requests/{request_id}", response_model=RequestStatus,
             operation_id="get_request", responses=_answers(*with_id))
    async def get_request(request_id: str, caller: _Caller = read) -> Response:
        """A request's status, its systems' states, its due date and what waits and why."""
        return _json(_STATUS, await caller.run(lambda _: service.status(request_id)))

    @app.delete("/v1/requests/{request_id}", response_model=RequestStatus,
                operation_id="cancel_request", responses=_answers(*with_id, 409))
    async def cancel_request(request_id: str, caller: _Caller = submit) -> Response:
        """Cancel a request while no system has acted on it (409 after)."""
        return _json(_STATUS, await caller.run(lambda _: service.cancel(request_id)))

    @app.get("/v1/requests/{request_id}/receipts", response_model=dict[str, Any],
             operation_id="get_receipts", responses=_answers(*with_id, 500))
    async def receipts(request_id: str, caller: _Caller = read) -> Response:
        """Signed receipts, the chain's signed head and the public key (docs/receipts.md;
        `erasure receipts verify --file F --subset --public-key KEY`)."""
        return _json(_OBJECT, await caller.run(lambda _: service.receipts(request_id)))

    @app.get("/v1/requests/{request_id}/package", operation_id="get_package",
             response_class=StreamingResponse,
             responses={200: {"content": {"application/zip": {}}}, **_answers(*with_id)})
    async def get_package(request_id: str, caller: _Caller = package) -> Any:
        """The access or portability package (zip) while it exists; recorded delivered,
        as `erasure package get` records it."""
        sink, name = await caller.run(lambda _: service.package(request_id))

        def chunks() -> Any:
            with sink:
                while block := sink.read(1 << 16):
                    yield block

        return StreamingResponse(chunks(), media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/v1/public-key", response_model=dict[str, str])
    async def public_key() -> Response:
        """The Ed25519 key that verifies receipts (public: no token needed)."""
        return _json(_OBJECT, await run_in_threadpool(service.public_key))

    @app.get("/v1/chain-head", response_model=dict[str, Any],
             responses=_answers(401, 403, 500))
    async def chain_head(caller: _Caller = read) -> Response:
        """The receipt chain's end and its signed head."""
        return _json(_OBJECT, await caller.run(lambda _: service.chain_head()))

    @app.post("/v1/confirmations", responses=_answers(400, 401, 404, 409, 413, 422))
    async def confirmation(request: Request,
                           system: Annotated[str, Query(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
                           ) -> dict[str, Any]:
        """A processor's signed confirmation (the notify connector's scheme: the signature
        is its authentication) ends its tasks awaiting confirmation."""
        body = await request.body()
        done = await run_in_threadpool(service.confirm, system, dict(request.headers), body)
        return {"confirmed": done}

    @app.post("/v1/webhooks/zendesk", response_model=RequestStatus, status_code=201,
              operation_id="zendesk_webhook", responses={
                  200: {"model": RequestStatus, "description": "recorded before",
                        "links": links},
                  201: {"description": "recorded", "links": links},
                  401: {"model": Problem, "description": "Zendesk's signature is missing "
                        "or does not verify, or its timestamp is stale."},
                  403: {"model": Problem,
                        "description": "A replay: the signature was seen before."},
                  **_answers(404, 409, 413, 422)})
    async def zendesk_webhook(request: Request) -> Any:
        """A Zendesk trigger's webhook (its signature is its authentication): the tagged
        ticket becomes a request, once per ticket and type (access then erasure: two
        requests); its outcome is posted back on the ticket as an internal note with the
        receipts (docs/api.md)."""
        body = await request.body()
        status, new = await run_in_threadpool(service.zendesk, request.headers, body)
        return _json(_STATUS, status, 201 if new else 200)

    ok = _OBJECT.dump_json({"status": "ok"})

    @app.get("/healthz", response_model=dict[str, str])
    async def healthz() -> Response:
        """The server answers."""
        return Response(ok, media_type="application/json")

    @app.get("/readyz", response_model=dict[str, str], responses=_answers(503))
    async def readyz() -> Response:
        """The ledger answers (503 when not)."""
        await run_in_threadpool(service.ready)
        return _json(_OBJECT, {"status": "ready"})

    app.add_middleware(AccessLog)
    app.add_middleware(BodyLimit, limit=max_body_bytes)  # outermost: before the access log
    return app
