"""The HTTP API's two middlewares, plain ASGI (Starlette's ``@app.middleware("http")``
would add a task group and memory streams to every request): the body limit and our own
access log, which also answers an unexpected error."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import URL
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog", "BodyLimit"]

log = logging.getLogger("erasure.api")
access_log = logging.getLogger("erasure.api.access")


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


class AccessLog:
    """Our own access log: one line per answer on ``erasure.api.access`` (method, path,
    status and the time to the answer's headers; never the query string, headers or body),
    and an unexpected error answered 500 and logged by its type only (its message may carry
    a value from the request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = False

        async def logged(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                access_log.info("%s %s %d %.1fms", scope["method"], _path(scope),
                                message["status"], (time.perf_counter() - started) * 1000)
            await send(message)

        try:
            await self.app(scope, receive, logged)
        except Exception as exc:
            if answered:  # its headers are out: nothing else can be said
                raise
            failed = type(exc).__name__
        else:
            if answered:
                return
            failed = "RuntimeError"  # the app returned without an answer
        log.error("%s %s failed: %s", scope["method"], _path(scope), failed)
        await JSONResponse({"detail": "internal error"}, status_code=500)(
            scope, receive, logged)


def _path(scope: Scope) -> str:
    # the path as Starlette's request.url.path gives it: its URL parsing drops tabs and
    # line breaks, so a path cannot forge a line of the log
    return URL(scope=scope).path
