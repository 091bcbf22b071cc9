"""The heartbeat of each `erasure worker` pool process: a timer thread that writes one small
statement in the ledger every ``heartbeat_seconds``, whether the process is working a batch
or idle, so that `erasure status` can tell a live worker from one killed mid-batch.

The beat is a thread of its own with a connection of its own: it is never part of a
batch's transactions and never waits for them. A process that ends cleanly marks itself
stopped; one killed (SIGKILL, its host lost) just stops beating, and is shown gone after
three missed beats. A beat holds the Celery node name and the process's lease owner (host,
PID namespace, PID, start time): no personal data.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config
    from ..ledger import Ledger
    from ..orchestrator import Orchestrator

__all__ = ["ProcessBeat", "node_name", "set_node_name", "start_process_beat",
           "stop_process_beat", "stop_worker_beats"]

log = logging.getLogger(__name__)

#: the worker's node name (set in its main process before the pool forks, so inherited),
#: and this process's beat with the PID it was started in (a fork does not inherit a beat)
_STATE: dict[str, Any] = {}


def set_node_name(name: str) -> None:
    """The Celery node name of this worker (``celeryd_after_setup``, main process)."""
    _STATE["node"] = name


def node_name() -> str:
    """The node name the beats are written under: Celery's (``celery@HOST`` by default)."""
    return str(_STATE.get("node") or f"celery@{socket.gethostname()}")


class ProcessBeat:
    """Writes ``ledger.beat`` for this process every ``interval`` seconds on a daemon
    thread until :meth:`stop`, which marks the process stopped."""

    def __init__(self, ledger: Ledger, worker: str, interval: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._ledger, self._worker, self._interval, self._clock = (
            ledger, worker, interval, clock)
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="erasure-worker-beat",
                                        daemon=True)

    def start(self) -> ProcessBeat:
        # the first beat now, so a batch this process starts next finds its row
        self._beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and mark this process stopped (a clean end, not a death)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 10)
        try:
            self._ledger.stop_beats(self._clock(), process=self._ledger.owner)
        except Exception as exc:  # the ledger away: shown gone after its beats, not stopped
            log.warning("could not mark this worker process stopped (%s)", type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._beat()

    def _beat(self) -> None:
        try:
            self._ledger.beat(self._ledger.owner, self._worker, self._interval, self._clock())
        except Exception as exc:  # a missed beat; the next one tries again
            if not self._failing:
                log.warning("heartbeat not written (%s); trying again every %gs",
                            type(exc).__name__, self._interval)
            self._failing = True
        else:
            if self._failing:
                log.warning("heartbeat written again")
            self._failing = False


def start_process_beat(orch: Orchestrator) -> None:
    """Start this process's beat (once per process; again in a forked child)."""
    if _STATE.get("pid") == os.getpid():
        return
    beat = ProcessBeat(orch.ledger, node_name(), orch.config.host.heartbeat_seconds)
    _STATE.update(pid=os.getpid(), beat=beat.start())


def stop_process_beat() -> None:
    """Stop this process's beat, if it has one, and mark it stopped."""
    if _STATE.get("pid") == os.getpid() and _STATE.get("beat") is not None:
        beat: ProcessBeat = _STATE.pop("beat")
        beat.stop()


def stop_worker_beats(config: Config, since: float) -> None:
    """Mark stopped every process of this worker started since ``since`` that did not
    (the worker's main process, once its pool has ended: a pool process ended by a cold
    shutdown may not have marked itself)."""
    from ..ledger import Ledger

    try:
        ledger = Ledger(config.host.ledger_url())
        try:
            ledger.stop_beats(time.time(), worker=node_name(), since=since)
        finally:
            ledger.close()
    except Exception as exc:
        log.warning("could not mark this worker stopped (%s)", type(exc).__name__)
