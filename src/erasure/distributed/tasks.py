"""The Celery task: a thin shell around :func:`.work.work_batch` (no engine logic here)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .app import TASK

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["register"]

#: retries of a batch whose requests another process holds, or whose ledger was away
MAX_RETRIES = 100


def register(app: Celery) -> None:
    """Register the batch task on ``app``, and have each pool process ready its
    orchestrator (plugins, config, ledger) when it starts, not in its first batch, and
    beat (:mod:`.beat`) from then until it ends."""
    from celery.signals import celeryd_after_setup, worker_process_init, worker_process_shutdown

    celeryd_after_setup.connect(_named, weak=False)
    worker_process_init.connect(_ready, weak=False)
    worker_process_shutdown.connect(_ended, weak=False)

    @app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True,
              max_retries=MAX_RETRIES)
    def run_batch(self: Any, batch_id: str, ids: Sequence[str], due_by: float) -> dict[str, int]:
        from .beat import start_process_beat
        from .work import work_batch, worker_orchestrator

        worker = str(self.request.hostname or "worker")
        try:
            orch = worker_orchestrator()
            start_process_beat(orch)  # if the ledger was away when this process started
            done = work_batch(orch, batch_id, list(ids), due_by, worker)
        except Exception as exc:
            # The ledger or a step failed outside what the engine classifies: what was
            # done is saved, the batch comes back later and resumes it.
            raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc
        if done.elsewhere:
            # Requests another live process holds (a slower copy of this batch, an
            # `erasure run`): looked at again once its lease may have ended.
            raise self.retry(countdown=done.come_back)
        return {"worked": done.worked}


def _named(sender: Any = None, **_kwargs: Any) -> None:
    from .beat import set_node_name

    set_node_name(str(sender))  # in the main process, before the pool's processes fork


def _ready(**_kwargs: Any) -> None:
    from .beat import start_process_beat
    from .work import worker_orchestrator

    try:
        start_process_beat(worker_orchestrator())  # opens the ledger (checks its schema)
    except Exception as exc:  # a ledger away at start: the first batch tries (and retries)
        log.warning("worker not readied (%s); its first batch will try again",
                    type(exc).__name__)


def _ended(**_kwargs: Any) -> None:
    from .beat import stop_process_beat

    stop_process_beat()  # a clean end: shown stopped, not gone
