"""Local stand-ins for a processor, for the tests and ``erasure demo``: a real SMTP server
(aiosmtpd) and a webhook receiver that checks signatures the way the README tells a
processor to, both on 127.0.0.1 on free ports.

aiosmtpd is a test extra; it is imported only when an :class:`SmtpSink` starts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Delivered", "SmtpSink", "WebhookReceiver"]


def free_port() -> int:
    """A port nobody listens on now (aiosmtpd's controller needs a number up front)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Delivered:
    """One message an SMTP sink accepted."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=default)

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        return body.get_content() if body is not None else ""


@dataclass
class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that keeps what it accepts.

    ``refuse`` DATA commands are answered ``451`` first (a server that is busy), and
    ``on_data`` (if set) is called with each message before the server answers (a test
    kills the sending process there).
    """

    refuse: int = 0
    on_data: Callable[[Delivered], None] | None = None
    delivered: list[Delivered] = field(default_factory=list)
    refused: int = 0
    port: int = 0
    _controller: Any = None

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if sink.refused < sink.refuse:
                    sink.refused += 1
                    return "451 4.3.0 Try again later"
                got = Delivered(envelope.mail_from, list(envelope.rcpt_tos),
                                bytes(envelope.original_content or envelope.content))
                sink.delivered.append(got)
                if sink.on_data is not None:
                    sink.on_data(got)
                return "250 2.0.0 Message accepted for delivery"

        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class WebhookReceiver:
    """A processor's webhook endpoint on 127.0.0.1: verifies each notice's signature as
    the README describes (HMAC-SHA256 over ``timestamp.body``, 5 minutes' tolerance),
    answers 401 to a bad one, 503 to the first ``fail`` good ones, and keeps the others
    once per ``X-Erasure-Message-Id`` (a repeat is counted in ``repeats``). The first
    ``hang_up`` good ones are kept but answered by closing the connection: the sender
    cannot know they arrived."""

    secret: str
    fail: int = 0
    hang_up: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    repeats: int = 0
    failed: int = 0
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/art19"

    def check(self, headers: Any, body: bytes) -> str | None:
        """None if ``headers`` sign ``body``; else why not (the processor's side)."""
        ts = headers.get("X-Erasure-Timestamp", "")
        sig = headers.get("X-Erasure-Signature", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return "stale or missing timestamp"
        want = "sha256=" + hmac.new(self.secret.encode(), ts.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(sig, want) else "bad signature"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                problem = receiver.check(self.headers, body)
                with receiver._lock:
                    if problem is not None:
                        receiver.rejected.append(problem)
                        status = 401
                    elif receiver.failed < receiver.fail:
                        receiver.failed += 1
                        status = 503
                    else:
                        mid = self.headers.get("X-Erasure-Message-Id")
                        if any(r["message_id"] == mid for r in receiver.received):
                            receiver.repeats += 1
                        else:
                            receiver.received.append(json.loads(body))
                        status = 202
                        if receiver.hang_up > 0:
                            receiver.hang_up -= 1
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
