"""Benchmark: erasures on Celery workers vs the in-process runner, on the same work.

Two sql systems (the sql connector on PostgreSQL: ``crm`` with customers and orders,
``shop`` with customers) hold N subjects; N verified erasure requests are recorded in a
fresh PostgreSQL ledger, then run

- in-process: ``Orchestrator.run()`` (the baseline: what `erasure run` does);
- on 1 and on 2 `erasure worker` processes (RabbitMQ on 127.0.0.1): what
  `erasure run --distributed --wait` does (send the batches, follow them in the ledger).

Each run has its own ledger, keys and freshly loaded systems; workers are started and ready
before the clock starts. Prints each run's time and erasures per second, the ratios to the
in-process run, and the overhead per task (a batch of ``batch_size``):
(time on 1 worker - time in-process) / tasks. Everything is checked: every request done,
every customer row gone.

    .venv/bin/python bench/celery_throughput.py [--quick] [--subjects N] [--batch 500]

``--quick`` is 1,000 subjects. Exit status 0 unless a run's result is wrong.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import sqlalchemy as sa
from psycopg import sql

from erasure.config import parse_config
from erasure.distributed.app import TASK, make_app
from erasure.distributed.work import send_due, wait_for
from erasure.models import RequestType
from erasure.orchestrator import Orchestrator, RequestSpec
from erasure.plugins import PluginHost
from erasure.runtime import tune_gc_for_batches

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
BROKER = "amqp://guest:guest@127.0.0.1:5672//"
ERASURE = str(Path(sys.executable).parent / "erasure")


@contextmanager
def database(tag: str) -> Iterator[str]:
    """A private database, dropped after."""
    name = f"erasure_celery_bench_{os.getpid()}_{tag}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def load(url: str, n: int) -> None:
    """crm.customers (+ 2 orders each) and shop.customers for n subjects."""
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema in ("crm", "shop"):
            s = sql.Identifier(schema)
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(s))
            conn.execute(sql.SQL("CREATE TABLE {}.customers (id bigint PRIMARY KEY, "
                                 "email text NOT NULL UNIQUE, phone text)").format(s))
            with conn.cursor() as cur, cur.copy(
                    sql.SQL("COPY {}.customers FROM STDIN").format(s)) as copy:
                for i in range(n):
                    copy.write_row((i, f"user{i}@example.org", f"+4930{i:08d}"))
            conn.execute(sql.SQL("CREATE INDEX ON {}.customers (lower(email))").format(s))
        conn.execute("CREATE TABLE crm.orders (id bigint PRIMARY KEY, customer_id bigint NOT "
                     "NULL REFERENCES crm.customers(id), amount numeric(10,2))")
        with conn.cursor() as cur, cur.copy("COPY crm.orders FROM STDIN") as copy:
            for i in range(2 * n):
                copy.write_row((i, i % n, "19.99"))
        conn.execute("CREATE INDEX ON crm.orders (customer_id)")
        for table in ("crm.customers", "crm.orders", "shop.customers"):
            conn.execute(f"VACUUM (ANALYZE) {table}")


def left(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(sa.text("SELECT (SELECT count(*) FROM crm.customers) + "
                                         "(SELECT count(*) FROM shop.customers)")).scalar_one())
    finally:
        engine.dispose()


def write_config(folder: Path, ledger: str, data: str, batch: int) -> Path:
    path = folder / "erasure.toml"
    system = ('connector = "sql"\nurl = "{data}"\nschema = "{schema}"\n'
              "[systems.{schema}.tables.customers]\nidentifiers = {{ email = \"email\", "
              "phone = \"phone\" }}\n")
    path.write_text(
        f'[erasure]\nstate_dir = "state"\nledger = "{ledger}"\n'
        f'broker = {{ env = "ERASURE_BROKER_URL" }}\nqueue = "bench-{uuid.uuid4().hex[:8]}"\n'
        f"batch_size = {batch}\n\n"
        "[systems.crm]\n" + system.format(data=data, schema="crm")
        + "[systems.crm.tables.orders]\n\n"
        "[systems.shop]\n" + system.format(data=data, schema="shop"))
    return path


def orchestrator(config: Path) -> Orchestrator:
    plugins = PluginHost.load()
    cfg = parse_config(tomllib.loads(config.read_text()),
                       known_connectors=plugins.registry.classes(), path=config,
                       env={**os.environ, "ERASURE_BROKER_URL": BROKER})
    return Orchestrator(cfg, plugins)


def submit(config: Path, n: int) -> None:
    orch = orchestrator(config)
    try:
        for start in range(0, n, 5000):
            orch.submit_many([
                RequestSpec(RequestType.ERASURE, (("email", f"user{i}@example.org"),),
                            verified=True) for i in range(start, min(n, start + 5000))])
    finally:
        orch.close()


def one_run(workers: int, n: int, batch: int, folder: Path) -> float:
    """Seconds to erase n subjects with ``workers`` workers (0: in-process)."""
    with database("ledger") as ledger, database("data") as data:
        load(data, n)
        config = write_config(folder, ledger, data, batch)
        submit(config, n)
        env = {**os.environ, "ERASURE_BROKER_URL": BROKER, "ERASURE_CONFIG": str(config),
               "ERASURE_BLOCK_PLUGINS": "s3,mail,zendesk,salesforce,notify"}
        procs: list[subprocess.Popen[bytes]] = []
        try:
            logs = []
            for k in range(workers):
                log = folder / f"worker{k}.log"
                logs.append(log)
                procs.append(subprocess.Popen(
                    [ERASURE, "worker", "--config", str(config), "--name",
                     f"bench{k}-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "WARNING"],
                    env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                    start_new_session=True))
            orch = orchestrator(config)
            if workers:
                orch.ledger.count_requests()  # the ledger is open before the clock starts
                app = make_app(orch.config)
                end = time.monotonic() + 120
                while len(app.control.ping(timeout=1.0)) < workers:  # every worker ready
                    if time.monotonic() > end:
                        raise SystemExit("workers not ready")

                def send(bid: str, ids: list[str], due_by: float) -> None:
                    app.send_task(TASK, args=[bid, ids, due_by], task_id=bid,
                                  queue=orch.config.host.queue)

            t0 = time.perf_counter()
            if workers:
                summary = wait_for(orch, send_due(orch, send), send, poll=0.1)
            else:
                summary = orch.run()
            elapsed = time.perf_counter() - t0
            orch.close()
            if len(summary.finished) != n or not summary.ok or left(data) != 0:
                raise SystemExit(f"wrong result with {workers} worker(s): "
                                 f"{len(summary.finished)} finished, {left(data)} rows left")
            return elapsed
        finally:
            for p in procs:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            if workers:
                from kombu import Connection

                queue = tomllib.loads(config.read_text())["erasure"]["queue"]
                with Connection(BROKER) as conn:  # the run's queue goes with it
                    conn.default_channel.queue_delete(queue)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 subjects")
    ap.add_argument("--subjects", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # not the fresh keys' warning of every run
    tune_gc_for_batches()  # as the `erasure` command (and so every worker) does
    n = 1000 if args.quick else args.subjects
    tasks = -(-n // args.batch)
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (0, 1, 2):
            folder = Path(tmp) / f"w{workers}"
            folder.mkdir()
            times[workers] = one_run(workers, n, args.batch, folder)
            what = "in-process" if workers == 0 else f"{workers} worker(s)"
            print(f"{what:>12}: {times[workers]:7.1f} s  {n / times[workers]:7.0f} erasures/s",
                  flush=True)
    base = times[0]
    print(f"{n} subjects, 2 sql systems on PostgreSQL, {tasks} tasks of {args.batch}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"throughput vs in-process: 1 worker {base / times[1]:.2f}x, "
          f"2 workers {base / times[2]:.2f}x (2 workers vs 1: {times[1] / times[2]:.2f}x)")
    print(f"overhead per task (1 worker - in-process) / tasks: "
          f"{(times[1] - base) / tasks * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
