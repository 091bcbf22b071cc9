"""``erasure serve``: uvicorn serving the API, with the in-process runner and the callback
sender (status callbacks and Zendesk notes queued in the ledger by whichever runner ran the
request) as background threads of the same process.

The runner thread runs due work exactly as ``erasure run`` does (the orchestrator's
runner), woken at once when a request is recorded and otherwise every ``poll_seconds``;
so a request submitted over HTTP gets the same receipts as one recorded by the CLI.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..orchestrator import Orchestrator
from .service import ApiService

__all__ = ["Background", "serve"]

log = logging.getLogger("erasure.api")


class Background:
    """The runner and the callback sender, each a daemon thread woken by an event."""

    def __init__(self, orch: Orchestrator, *, runner: bool, poll_seconds: float,
                 sender: Any = None) -> None:
        self.orch, self.poll = orch, poll_seconds
        self.run_lock = threading.Lock()
        self._work, self._callbacks, self._stop = (threading.Event(), threading.Event(),
                                                   threading.Event())
        self._threads = []
        if runner:
            self._threads.append(threading.Thread(target=self._run_loop, daemon=True,
                                                  name="erasure-runner"))
        self.sender = sender
        if sender is not None:
            self._threads.append(threading.Thread(target=self._send_loop, daemon=True,
                                                  name="erasure-callbacks"))

    def wake(self) -> None:
        """There is work: a request was recorded or changed."""
        self._work.set()

    def wake_callbacks(self) -> None:
        self._callbacks.set()

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        self._work.set()
        self._callbacks.set()
        for t in self._threads:
            t.join(timeout=30)

    def _run_loop(self) -> None:
        while not self._stop.is_set():
            self._work.clear()
            try:
                with self.run_lock:
                    self.orch.run()
            except Exception as exc:  # a ledger outage: the next round resumes
                log.error("run failed: %s", type(exc).__name__)
            self._work.wait(self.poll)

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._callbacks.clear()
            try:
                self.sender.send_due()
            except Exception as exc:
                log.error("sending callbacks failed: %s", type(exc).__name__)
            # backoff times are seconds apart: a second's look keeps them on time
            self._callbacks.wait(1.0)


def serve(config_path: Any, host: str | None, port: int | None) -> None:
    """Load the config, open the ledger and serve until interrupted."""
    import uvicorn

    from ..cli_common import _load
    from .app import create_app

    # the access log (method, path, status: never a body) at INFO, besides the warnings
    logging.getLogger("erasure.api").setLevel(logging.INFO)
    cfg, plugins = _load(config_path)
    settings = cfg.host.api
    if cfg.host.package_password and settings.runner:
        from ..errors import ConfigError

        # The password is shown once, to whoever ran the request: a package made by this
        # runner would have its password in no output, and could never be opened.
        raise ConfigError("package_password = true needs access requests run by the CLI: "
                          "set [erasure.api] runner = false and run `erasure run` from cron")
    orch = Orchestrator(cfg, plugins)
    # Callbacks are queued by the engine, whoever runs the request; this thread sends them.
    sender = orch.callback_sender()
    bg = Background(orch, runner=settings.runner, poll_seconds=settings.poll_seconds,
                    sender=sender)
    service = ApiService(orch, wake=bg.wake, run_lock=bg.run_lock)
    app = create_app(service, max_body_bytes=settings.max_body_bytes)
    server = uvicorn.Server(uvicorn.Config(
        app, host=host or settings.host, port=settings.port if port is None else port,
        access_log=False, log_level="info", server_header=False, proxy_headers=True))
    bg.start()
    try:
        server.run()
    finally:
        bg.stop()
        orch.close()
