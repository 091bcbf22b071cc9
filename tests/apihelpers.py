"""Helpers for tests of the HTTP API: a real ``erasure serve`` on a free port of 127.0.0.1,
talked to with httpx, and a local receiver of signed status callbacks."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from clihelpers import CLI, cli_env, run_cli


@dataclass
class Server:
    """A running ``erasure serve``."""

    proc: subprocess.Popen[str]
    url: str
    stderr: list[str]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return "".join(self.stderr)


def start_server(config: Path, env: Mapping[str, str] | None = None) -> Server:
    """Start ``erasure serve --port 0`` and wait until it says where it listens."""
    proc = subprocess.Popen([*CLI, "serve", "--port", "0", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(env) if env is not None else cli_env())
    lines: list[str] = []
    found = threading.Event()
    where: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            m = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            if m and not where:
                where.append(m.group(1))
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(60) or not where:
        proc.kill()
        raise AssertionError("erasure serve did not start:\n" + "".join(lines))
    return Server(proc, where[0], lines)


def make_token(config: Path, *scopes: str, env: Mapping[str, str] | None = None,
               expires: str | None = None) -> str:
    """A token from ``erasure tokens create`` (its last line)."""
    args = ["tokens", "create"] + [a for s in scopes for a in ("--scope", s)]
    if expires:
        args += ["--expires", expires]
    proc = run_cli(*args, config=config, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def wait_for(client: httpx.Client, request_id: str, statuses: tuple[str, ...],
             timeout: float = 30) -> dict[str, Any]:
    """GET the request until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/requests/{request_id}").json()
        if body["status"] in statuses or time.monotonic() > deadline:
            assert body["status"] in statuses, body
            return body
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class CallbackReceiver:
    """Receives status callbacks on 127.0.0.1 and keeps those whose signature verifies
    (as docs/api.md tells a receiver to check them); refused ones are counted."""

    secret: bytes
    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/erasure-status"

    def verify(self, headers: Any, body: bytes) -> bool:
        ts = headers.get("X-Erasure-Timestamp", "")
        given = headers.get("X-Erasure-Signature", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return False
        want = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
        return hmac.compare_digest(given, want)

    def start(self) -> CallbackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.verify(self.headers, body):
                    receiver.received.append(json.loads(body))
                    self.send_response(204)
                else:
                    receiver.refused += 1
                    self.send_response(401)
                self.end_headers()

            def log_message(self, *_a: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
