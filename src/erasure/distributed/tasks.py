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
    orchestrator (plugins, config, ledger) when it starts, not in its first batch."""
    from celery.signals import worker_process_init

    worker_process_init.connect(_ready, weak=False)

    @app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True,
              max_retries=MAX_RETRIES)
    def run_batch(self: Any, batch_id: str, ids: Sequence[str], due_by: float) -> dict[str, int]:
        from .work import work_batch, worker_orchestrator

        worker = str(self.request.hostname or "worker")
        try:
            done = work_batch(worker_orchestrator(), batch_id, list(ids), due_by, worker)
        except Exception as exc:
            # The ledger or a step failed outside what the engine classifies: what was
            # done is saved, the batch comes back later and resumes it.
            raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc
        if done.elsewhere:
            # Requests another live process holds (a slower copy of this batch, an
            # `erasure run`): looked at again once its lease may have ended.
            raise self.retry(countdown=done.come_back)
        return {"worked": done.worked}


def _ready(**_kwargs: Any) -> None:
    from .work import worker_orchestrator

    try:
        worker_orchestrator().ledger  # noqa: B018 - opened (and its schema checked) now
    except Exception as exc:  # a ledger away at start: the first batch tries (and retries)
        log.warning("worker not readied (%s); its first batch will try again",
                    type(exc).__name__)
