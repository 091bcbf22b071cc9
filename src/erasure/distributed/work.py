"""Distributed work without Celery: what a worker does with one batch and what
`erasure run --distributed` does to send and follow batches.

A worker claims the batch's requests in the ledger with its own lease (a request another
process holds is left to it) and hands them to :meth:`Runner.run_batch`, the function the
in-process runner calls for each batch it claims: the same steps, the same fenced writes,
the same receipts. A batch delivered again after its worker died finds in the ledger what
was done (its leases are free at once on the same host, at their expiry elsewhere) and
resumes from there, so no finished delete, sent notice or submitted job is repeated.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.runner import RunSummary
from ..engine.tasks import Stage, TaskSummary
from ..errors import ErasureError
from ..orchestrator import Orchestrator

__all__ = ["BatchDone", "BrokerUnavailable", "Sent", "WaitTimedOut", "send_due", "still_due",
           "summary_of", "wait_for", "work_batch", "worker_orchestrator"]

_PROCESS: dict[str, Any] = {}

log = logging.getLogger(__name__)


class BrokerUnavailable(ErasureError):
    """A batch could not be sent: the broker is away (the batches sent before it will be
    worked; run again)."""

    exit_code = 1


class WaitTimedOut(ErasureError):
    """`erasure run --distributed --wait --timeout` gave up waiting; the workers go on."""

    #: as timeout(1) exits: the run did not fail, it is not done yet
    exit_code = 124


def worker_orchestrator() -> Orchestrator:
    """This process's orchestrator (config from ``$ERASURE_CONFIG``), made anew in each
    process: a lease owner names its process, so a forked pool child must not use its
    parent's ledger."""
    if _PROCESS.get("pid") != os.getpid():
        from ..config import load_config
        from ..plugins import PluginHost

        plugins = PluginHost.load()
        uncovered = frozenset(f.plugin for f in plugins.failures) | plugins.blocked
        config = load_config(None, known_connectors=plugins.registry.classes(),
                             uncovered=uncovered)
        _PROCESS.update(pid=os.getpid(), orch=Orchestrator(config, plugins))
    orch: Orchestrator = _PROCESS["orch"]
    return orch


@dataclass(frozen=True)
class BatchDone:
    """What a worker did with a batch."""

    #: requests it claimed and worked
    worked: int
    #: requests still due that another live process holds
    elsewhere: int
    #: seconds after which those may be free
    come_back: float


def work_batch(orch: Orchestrator, batch_id: str, ids: Sequence[str], due_by: float,
               worker: str) -> BatchDone:
    """Claim what is still due of ``ids`` and work it through the runner's one batch."""
    ledger, host = orch.ledger, orch.config.host
    runner = orch.runner()
    ledger.start_batch(batch_id, worker, ledger.owner)  # its beat says if it is worked
    rows = ledger.claim(len(ids), host.lease_seconds, orch.clock(), only=ids, due_by=due_by)
    if rows:
        runner.run_batch(rows, RunSummary())
    ledger.finish_batch(batch_id, len(rows))
    _left, held = ledger.pending_among(ids, due_by, orch.clock())
    return BatchDone(len(rows), held, min(30.0, host.lease_seconds / 2))


@dataclass
class Sent:
    """Batches sent by one `erasure run --distributed`."""

    due_by: float
    ids: list[str] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)


def send_due(orch: Orchestrator, send: Callable[[str, list[str], float], None], *,
             only: Sequence[str] | None = None, limit: int | None = None) -> Sent:
    """Send every due request (or ``only`` these, at most ``limit``) as batches of
    ``batch_size`` through ``send(batch id, request ids, due by)``.

    What a run does before and after its batches happens here: a cut-back ledger is
    refused, events and expired packages are dealt with, and the key epoch is rotated for
    requests that ended since the last run.
    """
    runner = orch.runner()
    runner.begin()
    runner.end(RunSummary())  # rotation due from requests earlier runs ended
    sent = Sent(due_by=orch.clock())
    ids = orch.ledger.due_requests(sent.due_by)
    if only is not None:
        wanted = set(only)
        ids = [i for i in ids if i in wanted]
    sent.ids = ids[:limit] if limit is not None else ids
    _send(orch, send, sent, sent.ids)
    return sent


def _send(orch: Orchestrator, send: Callable[[str, list[str], float], None], sent: Sent,
          ids: Sequence[str]) -> None:
    size = orch.config.host.batch_size
    chunks = [list(ids[i : i + size]) for i in range(0, len(ids), size)]
    batches = [(uuid.uuid4().hex, chunk) for chunk in chunks]
    orch.ledger.add_batches([(bid, len(chunk)) for bid, chunk in batches])
    for n, (bid, chunk) in enumerate(batches):
        try:
            send(bid, chunk, sent.due_by)
        except BrokerUnavailable:
            orch.ledger.drop_batches([b for b, _chunk in batches[n:]])
            raise
        sent.batches.append(bid)


def wait_for(orch: Orchestrator, sent: Sent, send: Callable[[str, list[str], float], None],
             *, poll: float = 0.5, sleep: Callable[[float], None] = time.sleep,
             timeout: float | None = None) -> RunSummary:
    """Wait until none of the sent requests is due any more (done, or waiting for a later
    run, an operator or an approval); the run's summary from the ledger. After ``timeout``
    seconds, :class:`WaitTimedOut` says what is still queued or running (the workers go on).

    When nothing is worked for ``lease_seconds`` (none of them leased, none done) while
    some are left, their batches were lost (a broker that lost its queue): they are sent
    again. A batch sent twice is harmless: its requests are claimed once.
    """
    total = len(sent.ids)
    stall = max(10.0, orch.config.host.lease_seconds)
    last_left, last_change = total, time.monotonic()
    give_up = None if timeout is None else last_change + timeout
    while True:
        left, held = orch.ledger.pending_among(sent.ids, sent.due_by, orch.clock())
        if orch.progress:
            orch.progress("requests", total - left, total)
        if left == 0:
            break
        if give_up is not None and time.monotonic() >= give_up:
            raise WaitTimedOut(f"stopped waiting after {timeout:g}s: {still_due(orch, sent)}; "
                               "the workers go on (`erasure status`)")
        if left != last_left or held:
            last_left, last_change = left, time.monotonic()
        elif time.monotonic() - last_change > stall:
            rows = orch.ledger.due_requests(sent.due_by)
            wanted = set(sent.ids)
            try:
                _send(orch, send, sent, [r for r in rows if r in wanted])
            except BrokerUnavailable:
                log.warning("the broker is away: sending the %d request(s) left again later",
                            left)
            last_change = time.monotonic()
        sleep(poll)
    summary = summary_of(orch, sent.ids)
    orch.runner().end(summary)
    return summary


def still_due(orch: Orchestrator, sent: Sent) -> str:
    """What of ``sent`` is not done, in words: requests still due, batches queued (no
    worker took them yet) and running."""
    left, held = orch.ledger.pending_among(sent.ids, sent.due_by, orch.clock())
    queued, running = orch.ledger.batches_among(sent.batches)
    return (f"{left} of {len(sent.ids)} request(s) still due ({held} being worked), "
            f"{queued} of {len(sent.batches)} batch(es) queued, {running} running")


def summary_of(orch: Orchestrator, ids: Sequence[str]) -> RunSummary:
    """What became of ``ids``, read from the ledger: finished with their outcomes, or
    open with their tasks waiting or blocked."""
    summary = RunSummary()
    still: list[str] = []
    for rid, rtype, status, outcome in orch.ledger.request_states(ids):
        summary.claimed[rid] = rtype
        if status == "done":
            summary.finished.append(rid)
            summary.outcomes[outcome or "failed"] += 1
            summary.outcome_of[rid] = outcome or "failed"
        elif status == "awaiting_approval":
            summary.awaiting_approval.append(rid)
        elif status == "awaiting_verification":
            summary.awaiting_verification.append(rid)
        else:
            still.append(rid)
    for t in orch.ledger.tasks_for(still):
        if t.stage == Stage.DONE.value:
            continue
        told = TaskSummary.from_text(t.summary)
        if told.blocked is not None:
            summary.blocked.append((t.request_id, t.system, told.blocked))
        else:
            summary.waiting[t.stage] += 1
            summary.left.setdefault(t.request_id, []).append(t.stage)
            if told.held and t.stage == Stage.ACTING.value:
                summary.held.append((t.request_id, t.system, "; ".join(told.held)))
    return summary
