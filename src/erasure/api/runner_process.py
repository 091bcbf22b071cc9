"""``erasure serve``'s runner: a child process that runs due work as ``erasure run`` does,
woken through a pipe each time the API records a request.

Why a process and not a thread of the server: a run is CPU work in Python (the steps, the
connectors' parsing, SQLAlchemy) and the server's answers are too; in one process they take
turns on one interpreter lock, so every poll of a client slowed the run it was waiting for
and every run slowed the answers (a one-erasure round trip took about 60 ms where the run
itself takes 30). In its own process the run has a core of its own.

The runner is the same engine as ``erasure run``, against the same ledger: receipts are the
same whichever way a request came in, and it shares the ledger with the server's own short
runs (a cancel, a confirmation) the way a cron run shares it with ``serve``: through leases.

The pipe carries nothing but wake-ups (one byte each; none is ever waited for: a full pipe
means the runner has wake-ups pending anyway). Its end is the server's end: when the server
stops or dies the pipe reads EOF and the runner exits after the run it is in.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..orchestrator import Orchestrator

__all__ = ["RunnerProcess", "main"]

log = logging.getLogger("erasure.api")

#: seconds before a runner that ended on its own is started again (doubling to the cap)
RESTART_FIRST, RESTART_CAP = 1.0, 60.0
#: seconds a stopping server waits for the runner to finish the run it is in
STOP_WAIT = 30.0
#: seconds without a wake-up after which the runs' upkeep is done, and the most it waits
UPKEEP_IDLE, UPKEEP_MAX = 0.5, 60.0


class RunnerProcess:
    """Starts the runner process, wakes it, and starts it again if it dies (a crash, an
    out-of-memory kill): due work never waits on a dead runner longer than the back-off."""

    def __init__(self, config_path: Path | None, poll_seconds: float) -> None:
        self.config_path, self.poll_seconds = config_path, poll_seconds
        self._proc: subprocess.Popen[bytes] | None = None
        self._wake_fd: int | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name="erasure-runner-watch")

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def wake(self) -> None:
        """There is work: a request was recorded or changed. Never blocks."""
        fd = self._wake_fd
        if fd is None:
            return
        try:
            os.write(fd, b"w")
        except (BlockingIOError, BrokenPipeError, OSError):
            # full: wake-ups are pending already; broken: the watcher starts a new runner,
            # whose first round runs whatever is due
            pass

    def stop(self) -> None:
        """Let the runner finish the run it is in, then end it (killed after STOP_WAIT)."""
        self._stopping.set()
        with self._lock:
            proc, fd = self._proc, self._wake_fd
            self._wake_fd = None
        if fd is not None:
            os.close(fd)  # EOF: the runner exits after its run
        if proc is not None:
            try:
                proc.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                log.error("the runner did not stop within %.0f s: killed (the next run "
                          "resumes its work from the ledger)", STOP_WAIT)
                proc.kill()
                proc.wait()

    def _spawn(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        argv = [sys.executable, "-m", "erasure.api.runner_process", "--wake-fd", str(read_fd),
                "--poll-seconds", repr(self.poll_seconds)]
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        try:
            proc = subprocess.Popen(argv, pass_fds=(read_fd,), stdin=subprocess.DEVNULL)
        finally:
            os.close(read_fd)
        with self._lock:
            old, self._proc, self._wake_fd = self._wake_fd, proc, write_fd
        if old is not None:
            os.close(old)
        log.info("runner process started (pid %d)", proc.pid)

    def _watch(self) -> None:
        delay = RESTART_FIRST
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None
            started = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 10 * RESTART_CAP:
                delay = RESTART_FIRST  # it ran a good while: not a crash loop
            log.error("the runner process ended (exit status %s); starting it again in "
                      "%.0f s", code, delay)
            if self._stopping.wait(delay):
                return
            delay = min(2 * delay, RESTART_CAP)
            self._spawn()


def _loop(wake_fd: int, poll_seconds: float, config_path: Path | None) -> None:
    from ..cli_common import _load
    from ..orchestrator import Orchestrator

    stop = threading.Event()
    # Ctrl-C reaches the whole process group: the server decides when to stop and closes
    # the pipe, so a run in progress finishes its batch instead of breaking off.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cfg, plugins = _load(config_path)
    orch = Orchestrator(cfg, plugins)
    # The runs' upkeep (the key epoch's rotation, expired packages, undelivered events) is
    # done once the requests stop coming (UPKEEP_IDLE seconds without a wake-up), and at
    # the latest UPKEEP_MAX seconds after the last: not after every request, which is
    # every run here. The first run does its own (a crashed run's events go out at once).
    # pending: runs since the last upkeep left theirs
    first, pending, upkept = True, False, time.monotonic()
    try:
        while not stop.is_set():
            # busy for a minute without a pause: this run does it
            upkeep = first or (pending and time.monotonic() - upkept >= UPKEEP_MAX)
            try:
                summary = orch.run(upkeep=upkeep)
                first = False
                if upkeep:
                    pending, upkept = False, time.monotonic()
                elif summary.claimed:  # a run that found nothing left nothing to do
                    pending = True
            except Exception as exc:  # a ledger outage: the next round resumes
                log.error("run failed: %s", type(exc).__name__)
            # wait to be woken (or for the next look); a short tick notices SIGTERM
            deadline = time.monotonic() + poll_seconds
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(left, 1.0, UPKEEP_IDLE if pending else 1.0)
                ready, _, _ = select.select([wake_fd], [], [], wait)
                if ready:
                    if not os.read(wake_fd, 4096):
                        return  # EOF: the server stopped
                    break
                if pending:  # idle: the upkeep now, between requests
                    pending = _upkeep(orch)
                    upkept = time.monotonic()
    finally:
        try:
            if pending:
                _upkeep(orch)
        finally:
            orch.close()


def _upkeep(orch: Orchestrator) -> bool:
    """The upkeep the runs left; whether it is still to do (it failed)."""
    try:
        orch.upkeep()
        return False
    except Exception as exc:  # a ledger outage: the next idle moment tries again
        log.error("upkeep failed: %s", type(exc).__name__)
        return True


def main(argv: list[str] | None = None) -> int:
    """The runner process's entry point (started by ``erasure serve``, not by hand)."""
    parser = argparse.ArgumentParser(prog="erasure-serve-runner")
    parser.add_argument("--wake-fd", type=int, required=True)
    parser.add_argument("--poll-seconds", type=float, required=True)
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    from ..runtime import tune_gc_for_batches

    tune_gc_for_batches()
    _loop(args.wake_fd, args.poll_seconds, args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
