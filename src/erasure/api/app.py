"""The HTTP layer (FastAPI): routes, bearer-token scopes, the body limit and error answers.
It only parses and calls :class:`~.service.ApiService`; imported by ``erasure serve`` alone.

Every error answer is ``{"detail": ...}``: a one-line message, or for a malformed body
(422) the list of field errors (where and what, never the value sent). No stack trace
leaves the server; an unexpected error is logged by type and answered 500.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .schemas import FieldErrors, Problem, RequestStatus, SubmitRequest
from .service import ApiError, ApiService
from .tokens import TokenCheck, check_token

__all__ = ["create_app"]

log = logging.getLogger("erasure.api")
access_log = logging.getLogger("erasure.api.access")

_bearer = HTTPBearer(auto_error=False, description="A token from `erasure tokens create`.")


class BodyLimit:
    """Refuses (413) a body larger than ``limit`` bytes: by its Content-Length before it
    is read, or as soon as a chunked body passes the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _too_large(scope, receive, send, self.limit)
            return
        # No length given (chunked): read it here, up to the limit, and hand it on whole.
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            more = message.get("more_body", False)
            if seen > self.limit:
                await _too_large(scope, receive, send, self.limit)
                return
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    await JSONResponse({"detail": f"body larger than {limit} bytes"}, status_code=413)(
        scope, receive, send)


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
        def check(request: Request, _: Any = Depends(_bearer)) -> Any:
            row, why = check_token(ledger, request.headers.get("authorization"), name)
            if why == TokenCheck.SCOPE:
                raise ApiError(403, f"{why} {name!r}")
            if why is not None:
                raise ApiError(401, why)
            return row
        return Depends(check)

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        detail: Any = exc.message
        if exc.status == 422:  # every 422 has one shape: field errors
            detail = [{"loc": list(exc.loc), "msg": exc.message, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
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

    @app.middleware("http")
    async def _access(request: Request, call_next: Any) -> Any:
        # Our own access log: method, path (ids of requests, never identifiers: those only
        # travel in bodies) and status; no query string, no headers.
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:
            # by type only: an exception's message may carry a value from the request
            log.error("%s %s failed: %s", request.method, request.url.path,
                      type(exc).__name__)
            response = JSONResponse({"detail": "internal error"}, status_code=500)
        access_log.info("%s %s %d %.1fms", request.method, request.url.path,
                        response.status_code, (time.perf_counter() - started) * 1000)
        return response

    submit, read, package = scope("submit"), scope("read"), scope("package")

    by_token = (401, 403, 422)
    with_id = (*by_token, 404)

    # OpenAPI links: a client (and schemathesis' stateful tests) follows a submission to
    # the routes of the request it made
    links = {name: {"operationId": name, "parameters": {"request_id": "$response.body#/id"}}
             for name in ("get_request", "cancel_request", "get_receipts", "get_package")}

    @app.post("/v1/requests", response_model=RequestStatus, status_code=201,
              operation_id="submit_request", responses={
                  200: {"model": RequestStatus, "description": "recorded before",
                        "links": links},
                  201: {"description": "recorded", "links": links},
                  **_answers(*by_token, 409, 413)})
    def create_request(body: SubmitRequest,
                       idempotency_key: Annotated[str | None, Header(
                           max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")] = None,
                       token: Any = submit) -> Any:
        """Record a request; the runner processes it. The same request again (same
        subject_request_id or Idempotency-Key, same contents, same token) returns the
        request recorded before (200); the key reused for another request, or by another
        token, is refused (409)."""
        status, new = service.submit(body, idempotency_key, token)
        return JSONResponse(status.model_dump(mode="json"), status_code=201 if new else 200)

    @app.get("/v1/requests", response_model=list[RequestStatus], dependencies=[read],
             operation_id="list_requests", responses=_answers(*by_token))
    def list_requests(ticket: Annotated[str, Query(min_length=1, max_length=200)]) -> Any:
        """The requests recorded with a ticket reference."""
        return service.by_ticket(ticket)

    @app.get("/v1/requests/{request_id}", response_model=RequestStatus, dependencies=[read],
             operation_id="get_request", responses=_answers(*with_id))
    def get_request(request_id: str) -> Any:
        """A request's status, its systems' states, its due date and what waits and why."""
        return service.status(request_id)

    @app.delete("/v1/requests/{request_id}", response_model=RequestStatus,
                dependencies=[submit], operation_id="cancel_request",
                responses=_answers(*with_id, 409))
    def cancel_request(request_id: str) -> Any:
        """Cancel a request while no system has acted on it (409 after)."""
        return service.cancel(request_id)

    @app.get("/v1/requests/{request_id}/receipts", dependencies=[read],
             operation_id="get_receipts", responses=_answers(*with_id, 500))
    def receipts(request_id: str) -> dict[str, Any]:
        """Signed receipts, the chain's signed head and the public key (docs/receipts.md;
        `erasure receipts verify --file F --subset --public-key KEY`)."""
        return service.receipts(request_id)

    @app.get("/v1/requests/{request_id}/package", dependencies=[package],
             operation_id="get_package",
             response_class=StreamingResponse,
             responses={200: {"content": {"application/zip": {}}}, **_answers(*with_id)})
    def get_package(request_id: str) -> Any:
        """The access or portability package (zip) while it exists; recorded delivered,
        as `erasure package get` records it."""
        sink, name = service.package(request_id)

        def chunks() -> Any:
            with sink:
                while block := sink.read(1 << 16):
                    yield block

        return StreamingResponse(chunks(), media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/v1/public-key")
    def public_key() -> dict[str, str]:
        """The Ed25519 key that verifies receipts (public: no token needed)."""
        return service.public_key()

    @app.get("/v1/chain-head", dependencies=[read], responses=_answers(401, 403, 500))
    def chain_head() -> dict[str, Any]:
        """The receipt chain's end and its signed head."""
        return service.chain_head()

    @app.post("/v1/confirmations", responses=_answers(400, 401, 404, 409, 413, 422))
    async def confirmation(request: Request,
                           system: Annotated[str, Query(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
                           ) -> dict[str, Any]:
        """A processor's signed confirmation (the notify connector's scheme: the signature
        is its authentication) ends its tasks awaiting confirmation."""
        from starlette.concurrency import run_in_threadpool

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
        from starlette.concurrency import run_in_threadpool

        body = await request.body()
        status, new = await run_in_threadpool(service.zendesk, request.headers, body)
        return JSONResponse(status.model_dump(mode="json"), status_code=201 if new else 200)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The server answers."""
        return {"status": "ok"}

    @app.get("/readyz", responses=_answers(503))
    def readyz() -> dict[str, str]:
        """The ledger answers (503 when not)."""
        service.ready()
        return {"status": "ready"}

    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app
