"""``erasure serve``: uvicorn serving the API, with the runner (a child process, see
:mod:`.runner_process`) and the callback sender (status callbacks and Zendesk notes queued in
the ledger by whichever runner ran the request; a thread of the server).

The runner runs due work exactly as ``erasure run`` does (the orchestrator's runner), woken
at once when a request is recorded and otherwise every ``poll_seconds``; so a request
submitted over HTTP gets the same receipts as one recorded by the CLI.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from ..orchestrator import Orchestrator
from .service import ApiService

__all__ = ["CallbackThread", "serve"]

log = logging.getLogger("erasure.api")


class CallbackThread:
    """The callback sender: a daemon thread that sends what is due every second."""

    def __init__(self, sender: Any) -> None:
        self.sender = sender
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send_loop, daemon=True,
                                        name="erasure-callbacks")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sender.send_due()
            except Exception as exc:
                log.error("sending callbacks failed: %s", type(exc).__name__)
            # backoff times are seconds apart: a second's look keeps them on time
            self._stop.wait(1.0)


def serve(config_path: Path | None, host: str | None, port: int | None) -> None:
    """Load the config, open the ledger and serve until interrupted."""
    import uvicorn

    from ..cli_common import _load
    from .app import create_app
    from .runner_process import RunnerProcess

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
    callbacks = CallbackThread(orch.callback_sender())
    runner = RunnerProcess(config_path, settings.poll_seconds) if settings.runner else None
    service = ApiService(orch, wake=runner.wake if runner else lambda: None)
    app = create_app(service, max_body_bytes=settings.max_body_bytes)
    server = uvicorn.Server(uvicorn.Config(
        app, host=host or settings.host, port=settings.port if port is None else port,
        access_log=False, log_level="info", server_header=False, proxy_headers=True))
    if runner is not None:
        runner.start()
    callbacks.start()
    try:
        server.run()
    finally:
        callbacks.stop()
        if runner is not None:
            runner.stop()
        orch.close()
