"""``erasure worker`` and ``erasure run --distributed``: scale-out on Celery (docs/deploy.md).

Celery is imported only by these two, so no other command pays for it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from .cli_common import ConfigOpt, _errors, _fail, _load, _summary_exit, app, err, out

if TYPE_CHECKING:
    from .ledger import Ledger
    from .orchestrator import Orchestrator

__all__ = ["print_work", "run_distributed", "worker"]


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(
        min=1, max=64, help="Batches worked at once by this worker (one process each).")] = 1,
    name: Annotated[str | None, typer.Option(
        help="This worker's name, unique among workers (default: celery@HOST; %h is the "
             "host name).")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "INFO",
    config: ConfigOpt = None,
) -> None:
    """Start a Celery worker that works the batches `erasure run --distributed` sends
    (needs the broker setting of the erasure section and a PostgreSQL ledger). Run as
    many as the systems' limits allow, on any hosts sharing the ledger and the state
    folder's keys."""
    from .config import CONFIG_ENV
    from .distributed.app import check_distributed, make_app
    from .ledger import Ledger

    with _errors():
        cfg, _plugins = _load(config)
        check_distributed(cfg)
        # A wrong ledger URL is refused here, not in every batch; the schema is made once.
        Ledger(cfg.host.ledger_url()).close()
        if cfg.path is not None:  # the worker's processes load the same file
            os.environ[CONFIG_ENV] = str(cfg.path)
        celery_app = make_app(cfg)
    # A worker's log is read later: each line says when (the other commands' lines do not).
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"))
    argv = ["worker", f"--concurrency={concurrency}", f"--queues={cfg.host.queue}",
            f"--loglevel={loglevel}", "--without-gossip", "--without-mingle", "-O", "fair"]
    if name:
        argv.append(f"--hostname={name}")
    from .distributed.beat import stop_worker_beats

    started = time.time()
    try:
        celery_app.worker_main(argv)
    finally:
        stop_worker_beats(cfg, started)  # `erasure status`: stopped, not gone


def run_distributed(orch: Orchestrator, request: Sequence[str] | None, limit: int | None,
                    *, wait: bool, distributed: bool, json_: bool = False,
                    verbose: bool = False, timeout: float | None = None) -> None:
    """Send the due requests to the workers as batches; with ``wait``, follow them until
    none is due (or ``timeout`` seconds passed) and exit as `erasure run` does."""
    if not distributed:
        _fail("--wait goes with --distributed")
    if timeout is not None and not wait:
        _fail("--timeout goes with --wait")
    if json_ and not wait:
        _fail("--json goes with --wait when --distributed (the run's results come at its end)")
    from .distributed.app import TASK, check_distributed, make_app
    from .distributed.work import BrokerUnavailable, send_due, still_due, wait_for

    with _errors():
        check_distributed(orch.config)
        celery_app = make_app(orch.config)
        queue = orch.config.host.queue

        def send(batch_id: str, ids: list[str], due_by: float) -> None:
            try:
                celery_app.send_task(TASK, args=[batch_id, ids, due_by], task_id=batch_id,
                                     queue=queue)
            except Exception as exc:  # kombu's OperationalError: the broker is away
                raise BrokerUnavailable(
                    f"the broker is unavailable ({type(exc).__name__}); the batches sent so "
                    "far will be worked: run again") from None

        sent = send_due(orch, send, only=request, limit=limit)
        if sent.ids or verbose:
            err.print(f"sent {len(sent.ids)} request(s) in {len(sent.batches)} batch(es) to "
                      f"queue {queue}", highlight=False, markup=False)
        if wait:
            try:
                summary = wait_for(orch, sent, send, timeout=timeout)
            except KeyboardInterrupt:
                # only this process stops: the batches are the workers' (not `erasure
                # run`'s "the next run resumes")
                err.print(f"interrupted: stopped waiting: {still_due(orch, sent)}; the "
                          "workers go on (`erasure status`)", soft_wrap=True,
                          highlight=False, markup=False)
                raise typer.Exit(130) from None
        # status callbacks the workers' changes queued (bounded, as `erasure run` does);
        # without --wait, those of earlier runs
        orch.send_callbacks(orch.config.host.api.run_callback_seconds)
    if not wait:
        raise typer.Exit(0)
    doc = None
    if json_:
        from .reports import run_report

        doc = run_report(summary)
    _summary_exit(summary, verbose=verbose, json_doc=doc)


def print_work(ledger: Ledger, lease_seconds: float) -> None:
    """`erasure status`'s table of distributed work (nothing when no batch was sent and no
    worker ran): batches queued, and per worker whether it is live (its heartbeat), the
    batches and requests it is working, has left stalled and has finished."""
    from .tables import compact_table

    work = ledger.work_by_worker(lease_seconds)
    if not work["queued_batches"] and not work["workers"]:
        return
    table = compact_table(f"Distributed work: {work['queued_batches']} batch(es) of "
                          f"{work['queued_requests']} request(s) queued")
    for col in ("worker", "state (last beat, UTC)", "running batches", "running requests",
                "stalled batches", "finished batches (1 day)",
                "last started or finished (UTC)"):
        table.add_column(col)
    for name, w in work["workers"].items():
        table.add_row(escape(name), _state(w), str(w["running_batches"]),
                      str(w["running_requests"]), _stalled(w), str(w["finished_batches"]),
                      "-" if w["last_seen"] is None else f"{w['last_seen']:%Y-%m-%d %H:%M:%S}")
    out.print(table)
    if work["stalled_batches"]:
        out.print(
            f"{work['stalled_batches']} stalled batch(es): the worker process working them "
            "is gone or stopped. The broker gives each back to a worker (RabbitMQ when the "
            "dead worker's connection drops; Redis after its visibility timeout), which "
            "resumes its requests once their leases end (at once on the dead worker's "
            "host); with no worker running they wait in the queue.",
            highlight=False, markup=False)


def _state(w: dict[str, object]) -> str:
    if w["state"] is None:
        return "- (no heartbeat)"  # a worker of a version before heartbeats
    return f"{w['state']} ({w['last_beat']:%Y-%m-%d %H:%M:%S})"


def _stalled(w: dict[str, object]) -> str:
    if not w["stalled_batches"]:
        return "0"
    text = f"{w['stalled_batches']} ({w['stalled_requests']} requests)"
    if w["leases_end_by"] is not None:
        text += f", leases end by {w['leases_end_by']:%H:%M:%S} UTC"
    return text
