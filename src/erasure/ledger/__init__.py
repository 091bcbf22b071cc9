"""The ledger: requests, per-system tasks and signed receipts, in SQLite (WAL) or PostgreSQL.

Every step is written before and after it runs, so a killed run resumes where it stopped.
Requests are claimed with leases: two ``erasure run`` processes never work the same request.
Raw identifiers and findings are stored encrypted, only while the request is open.

One store per kind of record (a module each), behind the one :class:`Ledger`:

- :mod:`.requests`: requests and their claims (leases, the fence of every write)
- :mod:`.tasks`: tasks and their transitions
- :mod:`.outbox`: hook events
- :mod:`.receipts`: the receipt chain and its signed heads
- :mod:`.keys`: request keys and the key epoch
- :mod:`.packages`: access and portability packages
- :mod:`.sweeps`: retention sweeps
- :mod:`.reviews`: an operator's decisions on review items
- :mod:`.api`: the HTTP API's tokens, its requests' callback URLs and the callbacks to send
- :mod:`.limits`: per-system rate and concurrency limits shared by every process
- :mod:`.work`: batches sent to distributed workers (queued, running, stalled, finished)
- :mod:`.workers`: the heartbeats of the workers' processes (live, gone, stopped)

:mod:`.db` holds what they share: the engine, transactions, the schema, the advisory locks.
"""

from __future__ import annotations

from ..dates import add_months, days_left, utcnow
from ..ledger_tables import (  # noqa: F401  (the schema, re-exported for tests and tools)
    api_requests_t,
    api_tokens_t,
    callbacks_t,
    ledger_meta_t,
    metadata,
    outbox_t,
    packages_t,
    receipt_heads_t,
    receipts_t,
    request_keys_t,
    requests_t,
    review_decisions_t,
    sweeps_t,
    system_limits_t,
    task_events_t,
    tasks_t,
    work_batches_t,
    worker_beats_t,
)
from .api import ApiStore
from .db import Lock, executemany, ledger_exists
from .keys import KeyStore
from .limits import LimitStore, SlotTimeout
from .outbox import OutboxStore
from .packages import PackageStore
from .receipts import ReceiptStore
from .requests import RequestRow, RequestStore
from .reviews import ReviewStore
from .sweeps import SweepStore
from .tasks import TaskRow, TaskStore
from .work import WorkStore

__all__ = ["Ledger", "Lock", "RequestRow", "SlotTimeout", "TaskRow", "add_months", "days_left",
           "executemany", "ledger_exists", "utcnow"]


class Ledger(RequestStore, TaskStore, OutboxStore, ReceiptStore, KeyStore, PackageStore,
             SweepStore, ApiStore, ReviewStore, LimitStore, WorkStore):
    """Typed access to the ledger database: every store's methods on one object."""
