"""Distributed runs on Celery against the real RabbitMQ and Redis on 127.0.0.1, with real
`erasure worker` processes started here (their PIDs recorded and always ended).

What a user relies on: the workers write the same receipts as the in-process runner; a
worker killed mid-batch loses nothing and repeats no effect (its batch comes back to the
other worker, which resumes it from the ledger); a system's limits hold across workers;
the broker may restart mid-run. The default run uses ~50 subjects;
``ERASURE_CELERY_SUBJECTS=1000`` (`make test-long`) runs the long form.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from clihelpers import ctrl_c_reaches_it

from erasure.config import parse_config
from erasure.models import RequestType
from erasure.orchestrator import Orchestrator, RequestSpec
from erasure.plugins import PluginHost
from erasure.testing.memory import MemoryConnector, MemorySettings

SUBJECTS = int(os.environ.get("ERASURE_CELERY_SUBJECTS", "50"))
RABBIT = "amqp://guest:guest@127.0.0.1:5672//"
ERASURE = str(Path(sys.executable).parent / "erasure")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: receipt fields that differ between two runs of the same work (times, chain position)
VARYING = ("finished_at", "started_at", "received_at", "due_at", "prev", "seq")
#: the tests share the module's worker processes: one xdist worker runs them, in order
pytestmark = pytest.mark.xdist_group("distributed")
RATE = 20.0  # crm's calls per second, shared by every worker
REDIS_SUBJECTS = max(15, SUBJECTS // 4)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", autouse=True)
def _services() -> None:
    for port, what in ((5672, "RabbitMQ"), (5432, "PostgreSQL")):
        if not _port_open(port):  # pragma: no cover - CI and this machine run both
            pytest.skip(f"{what} not reachable on 127.0.0.1:{port}")


@dataclass
class Site:
    """One deployment: its folder, config, ledger database, memory systems and broker."""

    root: Path
    ledger_url: str | None
    broker: str
    queue: str = field(default_factory=lambda: f"erasure-test-{uuid.uuid4().hex[:10]}")
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.root / "erasure.toml"

    @property
    def env(self) -> dict[str, str]:
        # without the COLUMNS pytest-xdist's workers set (80): `erasure status` piped draws
        # its table at the width it would for a pipe, as in a cron job's log
        base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return {**base, "ERASURE_BROKER_URL": self.broker, "ERASURE_BLOCK_PLUGINS": "sql",
                "ERASURE_CONFIG": str(self.config)}

    def write(self, *, limited: bool = True, latency_ms: int = 20, host: str = "") -> None:
        """The config; ``limited``: crm is slow and limited (the receipts say neither);
        ``host``: more lines of the erasure section."""
        self.root.mkdir(parents=True, exist_ok=True)
        ledger = f'ledger = "{self.ledger_url}"\n' if self.ledger_url else ""
        crm = (f'latency_ms = {latency_ms}\ncall_log = "{self.root / "crm.calls"}"\n'
               f"limits = {{ calls_per_second = {RATE}, concurrent = 1 }}\n" if limited else "")
        self.config.write_text(f"""
[erasure]
state_dir = "state"
{host}
{ledger}broker = {{ env = "ERASURE_BROKER_URL" }}
queue = "{self.queue}"
batch_size = 5
lease_seconds = 20
[erasure.retry]
deadline_seconds = 15

[systems.crm]
connector = "memory"
path = "{self.root / 'crm.json'}"
{crm}
[systems.tickets]
connector = "memory"
path = "{self.root / 'tickets.json'}"
pending_polls = 1
""")

    def orch(self) -> Orchestrator:
        plugins = PluginHost.load()
        cfg = parse_config(tomllib.loads(self.config.read_text()),
                           known_connectors=plugins.registry.classes(), path=self.config,
                           env=self.env)
        return Orchestrator(cfg, plugins)

    def system(self, name: str) -> MemoryConnector:
        return MemoryConnector(name, MemorySettings(path=str(self.root / f"{name}.json")))

    def seed(self, first: int, count: int) -> None:
        """Subjects ``first``..: one crm item, two ticket items each; and one other
        person's item in each system, which must stay."""
        people = range(first, first + count)
        self.system("crm").seed({
            **{f"c{i}": ("user", {"email": f"s{i}@example.org", "customer_id": f"C{i}"})
               for i in people},
            f"c-other-{first}": ("user", {"email": f"other{first}@example.org"})})
        self.system("tickets").seed({
            **{f"t{i}{part}": ("ticket", {"email": f"s{i}@example.org"})
               for i in people for part in "ab"},
            f"t-other-{first}": ("ticket", {"email": f"other{first}@example.org"})})
        orch = self.orch()
        try:
            orch.submit_many([RequestSpec(RequestType.ERASURE, (("email", f"s{i}@example.org"),),
                                          verified=True, request_id=f"r-{i:016x}")
                              for i in people])
        finally:
            orch.close()

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ERASURE, *args, "--config", str(self.config)], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - the process keeps it
        proc = subprocess.Popen(
            # unique on the broker: a worker's control queue is named after it
            [ERASURE, "worker", "--config", str(self.config), "--name",
             f"{name}-{uuid.uuid4().hex[:8]}@%h"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def wait_ready(self, name: str, timeout: float = 90) -> None:
        end = time.monotonic() + timeout
        while b" ready." not in (self.root / f"{name}.log").read_bytes():
            if time.monotonic() > end:
                raise AssertionError(f"worker {name} not ready:\n"
                                     + (self.root / f"{name}.log").read_text()[-2000:])
            time.sleep(0.1)

    def stop(self) -> None:
        """End every process this site started (by its recorded PID, with its process
        group: a worker's pool processes too). Nothing is left to save: the ledger has it."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def delete_queue(self) -> None:
        from kombu import Connection

        try:
            with Connection(self.broker, connect_timeout=2) as conn:
                conn.default_channel.queue_delete(self.queue)
        except Exception:
            pass

    # what the systems and the ledger say ---------------------------------------------

    def deletes(self) -> Counter[str]:
        """Items the crm system really deleted (its journal), by item."""
        journal = self.root / "crm.json.journal"
        lines = journal.read_text().split("\n") if journal.exists() else []
        return Counter(line.split()[1] for line in lines if line.endswith(" done"))

    def submissions(self) -> list[str]:
        """Bulk jobs submitted to the tickets system (idempotency keys), in order."""
        return self.system("tickets").submissions()

    def receipts(self) -> list[dict[str, Any]]:
        orch = self.orch()
        try:
            return [json.loads(r["body"]) if isinstance(r["body"], str) else r["body"]
                    for r in orch.ledger.receipts()]
        finally:
            orch.close()


def _pg_database() -> Iterator[str]:
    name = f"erasure_celery_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class RedisServer:
    """A private redis-server (append-only file in its folder) as a broker: killed with
    SIGKILL and started again on the same port and data by :meth:`restart`."""

    folder: Path
    port: int = field(default_factory=_free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None
        self.procs.append(subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        end = time.monotonic() + 20
        while not _port_open(self.port):
            assert time.monotonic() < end, "redis-server did not start"
            time.sleep(0.05)

    def restart(self) -> None:
        self.procs[-1].send_signal(signal.SIGKILL)
        self.procs[-1].wait(timeout=10)
        time.sleep(1.0)
        self.start()

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site, RedisServer]]:
    """A deployment on RabbitMQ with two workers (shared by the tests below, in order) and
    one on a private Redis with one worker; their workers start at once."""
    if shutil.which("redis-server") is None:  # pragma: no cover - CI installs redis-server
        pytest.skip("redis-server not installed")
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    for url, url_r in zip(_pg_database(), _pg_database(), strict=True):
        rabbit = Site(tmp_path_factory.mktemp("dist"), url, RABBIT)
        try:
            redis.start()
            on_redis = Site(tmp_path_factory.mktemp("dist-redis"), url_r, redis.url)
            for s in (rabbit, on_redis):
                s.write()
            rabbit.seed(0, SUBJECTS)
            on_redis.seed(0, REDIS_SUBJECTS)
            for s, name in ((rabbit, "wa"), (rabbit, "wb"), (on_redis, "wr")):
                s.start_worker(name)
            for s, name in ((rabbit, "wa"), (rabbit, "wb"), (on_redis, "wr")):
                s.wait_ready(name)
            yield rabbit, on_redis, redis
        finally:
            for s in (rabbit, on_redis):
                s.stop()
            rabbit.delete_queue()
            redis.stop()


@pytest.fixture(scope="module")
def site(sites: tuple[Site, Site, RedisServer]) -> Site:
    return sites[0]


def _by_key(receipts: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for body in receipts:
        key = (body["request"], body["system"])
        assert key not in out, f"two receipts for {key}"
        out[key] = {k: v for k, v in body.items() if k not in VARYING}
    return out


def test_two_workers_write_the_receipts_the_in_process_runner_writes(
        site: Site, tmp_path: Path) -> None:
    done = site.run("run", "--distributed", "--wait")
    assert done.returncode == 0, done.stderr
    assert f"finished {SUBJECTS} request(s): {SUBJECTS} completed" in done.stderr
    # a line per request, as `erasure run` prints
    assert sorted(done.stdout.splitlines()) == sorted(
        f"r-{i:016x} erasure: finished, completed" for i in range(SUBJECTS))

    # the work was split across both workers
    orch = site.orch()
    try:
        work = orch.ledger.work_by_worker(20)
    finally:
        orch.close()
    assert work["queued_batches"] == 0
    assert sorted(n.split("-")[0] for n in work["workers"]) == ["wa", "wb"]
    assert all(w["finished_batches"] > 0 for w in work["workers"].values())

    # `erasure status` shows each worker's work (none queued or running now)
    status = site.run("status", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)["work"]
    assert shown["queued_batches"] == 0 and len(shown["workers"]) == 2
    assert sum(w["finished_batches"] for w in shown["workers"].values()) == -(-SUBJECTS // 5)
    assert all(w["running_batches"] == 0 for w in shown["workers"].values())

    # the same work in-process (SQLite ledger, same keys, same request ids)
    twin = Site(tmp_path / "twin", None, RABBIT)
    twin.write(limited=False)
    shutil.copytree(site.root / "state" / "keys", tmp_path / "twin" / "state" / "keys",
                    ignore=shutil.ignore_patterns("epochs"))
    twin.seed(0, SUBJECTS)
    orch = twin.orch()
    try:
        assert orch.run().ok
    finally:
        orch.close()
    distributed, in_process = _by_key(site.receipts()), _by_key(twin.receipts())
    assert len(distributed) == 2 * SUBJECTS
    assert distributed == in_process

    # effects: each item deleted once, each job submitted once, others' items kept
    assert set(site.deletes()) == {f"c{i}" for i in range(SUBJECTS)}
    assert set(site.deletes().values()) == {1}
    jobs = site.submissions()
    assert len(jobs) == len(set(jobs)) == SUBJECTS
    assert site.system("crm").count() == 1 and site.system("tickets").count() == 1


def test_a_systems_limits_hold_across_workers(site: Site) -> None:
    """What the crm system saw during the run above: calls from both workers, never two
    at once, never more than the rate allows in any second."""
    if not (site.root / "crm.calls").exists():  # run alone
        assert site.run("run", "--distributed", "--wait").returncode == 0
    calls = sorted(tuple(float(x) for x in line.split()[:2]) + (line.split()[2],)
                   for line in (site.root / "crm.calls").read_text().splitlines())
    assert len({pid for _s, _e, pid in calls}) >= 2, "both workers called the system"
    for (_s1, end, _p1), (start, _e2, _p2) in zip(calls, calls[1:], strict=False):
        assert start >= end - 0.002, "two calls at once (concurrent = 1)"
    starts = [s for s, _e, _p in calls]
    for n, t in enumerate(starts):
        in_a_second = sum(1 for u in starts[n:] if u < t + 1.0)
        assert in_a_second <= RATE + 1, f"{in_a_second} calls within one second"


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_nothing(site: Site) -> None:
    first, more = 100_000, max(20, SUBJECTS // 2)
    site.seed(first, more)
    sender = subprocess.Popen(
        [ERASURE, "run", "--distributed", "--wait", "--config", str(site.config)],
        env=site.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    site.procs.append(sender)  # type: ignore[arg-type]
    victim = site.procs[0]
    admin = sa.create_engine(site.ledger_url or "")
    killed: str | None = None
    try:
        end = time.monotonic() + 120
        while killed is None and time.monotonic() < end:
            with admin.connect() as c:
                killed = c.execute(sa.text(
                    "SELECT id FROM work_batches WHERE worker LIKE 'wa-%' AND "
                    "finished_at IS NULL AND started_at IS NOT NULL")).scalar()
            if killed is None:
                time.sleep(0.02)
        assert killed is not None, "worker wa never started a batch"
        time.sleep(0.15)  # into the batch's steps
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        _out, errs = sender.communicate(timeout=240)
        assert sender.returncode == 0, errs
        with admin.connect() as c:
            row = c.execute(sa.text("SELECT worker, finished_at FROM work_batches "
                                    "WHERE id = :id"), {"id": killed}).one()
            per_key = c.execute(sa.text(
                "SELECT count(*), count(DISTINCT (request_id, system)) FROM receipts")).one()
            open_left = c.execute(sa.text(
                "SELECT count(*) FROM requests WHERE status != 'done'")).scalar()
    finally:
        admin.dispose()
    # the killed worker's batch was given back and finished by the other worker
    assert row.worker.startswith("wb-") and row.finished_at is not None
    assert open_left == 0
    # one receipt per request and system
    assert per_key[0] == per_key[1] == 2 * (SUBJECTS + more)
    deletes = site.deletes()
    assert set(deletes) == {f"c{i}" for i in [*range(SUBJECTS), *range(first, first + more)]}
    assert set(deletes.values()) == {1}, "an item deleted twice"
    jobs = site.submissions()
    assert len(jobs) == len(set(jobs)) == SUBJECTS + more, "a bulk job submitted twice"
    assert site.system("crm").count() == 2 and site.system("tickets").count() == 2


def test_the_broker_restarted_mid_run(sites: tuple[Site, Site, RedisServer]) -> None:
    _rabbit, s, redis = sites
    count = REDIS_SUBJECTS
    sender = subprocess.Popen(
        [ERASURE, "run", "--distributed", "--wait", "--config", str(s.config)],
        env=s.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    s.procs.append(sender)  # type: ignore[arg-type]
    admin = sa.create_engine(s.ledger_url or "")
    try:
        end = time.monotonic() + 120
        while True:
            with admin.connect() as c:
                finished = c.execute(sa.text(
                    "SELECT count(*) FROM work_batches WHERE finished_at IS NOT NULL")).scalar()
            if finished:
                break
            assert time.monotonic() < end, "no batch finished"
            time.sleep(0.05)
        redis.restart()
        _out, errs = sender.communicate(timeout=240)
        with admin.connect() as c:
            left = c.execute(sa.text(
                "SELECT count(*) FROM requests WHERE status != 'done'")).scalar()
    finally:
        admin.dispose()
    assert finished < count // 5, "the broker restarted after the run"
    assert sender.returncode == 0, errs
    assert left == 0
    assert len(_by_key(s.receipts())) == 2 * count
    assert set(s.deletes()) == {f"c{i}" for i in range(count)}
    assert set(s.deletes().values()) == {1}
    jobs = s.submissions()
    assert len(jobs) == len(set(jobs)) == count


def test_distributed_work_is_refused_with_one_line_without_its_parts(tmp_path: Path) -> None:
    from clihelpers import cli_env, run_many

    def config(name: str, text: str) -> str:
        path = tmp_path / f"{name}.toml"
        path.write_text(f'[erasure]\nstate_dir = "{tmp_path / name}"\n{text}\n'
                        '[systems.crm]\nconnector = "memory"\n')
        return str(path)

    broker = 'broker = { env = "ERASURE_BROKER_URL" }\n'
    sqlite = config("sqlite", broker)
    no_broker = config("nobroker", 'ledger = "postgresql+psycopg://postgres@127.0.0.1:1/x"')
    env = cli_env({"ERASURE_BROKER_URL": RABBIT})
    worker, run, wait, timeout = run_many(
        ["worker", "--config", sqlite], ["run", "--distributed", "--config", no_broker],
        ["run", "--wait", "--config", sqlite],
        ["run", "--distributed", "--timeout", "5", "--config", sqlite], env=env)
    for done, words in ((worker, "distributed work needs a PostgreSQL ledger"),
                        (run, "no broker: set [erasure] broker"),
                        (wait, "--wait goes with --distributed"),
                        (timeout, "--timeout goes with --wait")):
        assert done.returncode == 2, done.stderr
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "guest" not in worker.stderr + worker.stdout  # the broker's password


def test_wait_stops_at_its_timeout_or_ctrl_c_saying_what_the_workers_still_have(
        tmp_path: Path) -> None:
    """No worker consumes the queue: `--wait --timeout` gives up with one line saying
    what is still queued and exit 124, Ctrl-C with the same account and exit 130; the
    batches stay queued for the workers (fast: no worker is started)."""
    for url in _pg_database():
        site = Site(tmp_path / "site", url, RABBIT)
        try:
            site.write(limited=False)
            site.seed(0, 3)
            started = time.monotonic()
            done = site.run("run", "--distributed", "--wait", "--timeout", "1", timeout=120)
            assert done.returncode == 124, done.stderr
            assert time.monotonic() - started < 60
            assert done.stderr.splitlines() == [
                f"sent 3 request(s) in 1 batch(es) to queue {site.queue}",
                "error: stopped waiting after 1s: 3 of 3 request(s) still due (0 being "
                "worked), 1 of 1 batch(es) queued, 0 running; the workers go on (`erasure "
                "status`)"], done.stderr
            assert done.stdout == ""

            proc = subprocess.Popen([ERASURE, "run", "--distributed", "--wait", "--config",
                                     str(site.config)], env=site.env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True,
                                    preexec_fn=ctrl_c_reaches_it)
            try:
                assert proc.stderr is not None
                sent = proc.stderr.readline()  # it is waiting now
                assert sent.startswith("sent 3 request(s) in 1 batch(es)"), sent
                time.sleep(1.0)
                proc.send_signal(signal.SIGINT)
                out, rest = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert proc.returncode == 130, rest
            assert rest.splitlines() == [
                "interrupted: stopped waiting: 3 of 3 request(s) still due (0 being worked), "
                "1 of 1 batch(es) queued, 0 running; the workers go on (`erasure status`)"], rest
            # both runs' batches wait in the ledger (and on the broker) for a worker
            orch = site.orch()
            try:
                assert orch.ledger.work_by_worker(20)["queued_batches"] == 2
                assert orch.ledger.receipts() == []
            finally:
                orch.close()
        finally:
            site.delete_queue()


def test_a_systems_limits_are_validated_one_line_each(tmp_path: Path) -> None:
    from erasure.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        parse_config({"systems": {"crm": {"connector": "memory", "limits": {
            "calls_per_second": 0, "concurrent": "many", "burst": 1, "per_hour": 5}}}},
            known_connectors={"memory": MemoryConnector})
    assert sorted(exc.value.problems) == [
        "systems.crm.limits.calls_per_second: Input should be greater than 0",
        "systems.crm.limits.concurrent: Input should be a valid integer, unable to parse "
        "string as an integer",
        "systems.crm.limits.per_hour: unknown key"]


def test_status_counts_batches_queued_and_running_per_worker(tmp_path: Path) -> None:
    """What `erasure status` reads: a batch is queued until a worker starts it, then
    running on that worker (on the one that took it over, if it was given back) until it
    finishes."""
    from erasure.ledger import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        ledger.add_batches([("b1", 5), ("b2", 5), ("b3", 2)])
        ledger.start_batch("b1", "w1@h")
        ledger.start_batch("b2", "w1@h")
        ledger.start_batch("b2", "w2@h")  # w1 died; w2 took its batch over
        ledger.finish_batch("b2", 5)
        work = ledger.work_by_worker(300)
    finally:
        ledger.close()
    assert (work["queued_batches"], work["queued_requests"]) == (1, 2)
    w1, w2 = work["workers"]["w1@h"], work["workers"]["w2@h"]
    assert (w1["running_batches"], w1["running_requests"], w1["finished_batches"]) == (1, 5, 0)
    assert (w2["running_batches"], w2["running_requests"], w2["finished_batches"]) == (0, 0, 1)


def test_a_worker_is_live_while_it_beats_gone_after_three_missed_beats_stopped_at_its_end(
        tmp_path: Path) -> None:
    """What `erasure status` reads from the heartbeats (clock set by hand): a worker is live
    until three beats are missed, then gone, and the batch its process held is stalled
    until another worker takes it; a process that ended cleanly is stopped, and a late
    beat does not bring it back."""
    from erasure.ledger import Ledger

    t0 = 1_800_000_000.0
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        ledger.add_batches([("b1", 5), ("b2", 3)])
        for proc, worker in (("p1", "w1@h"), ("p2", "w2@h")):
            ledger.beat(proc, worker, 10.0, t0)
        ledger.start_batch("b1", "w1@h", "p1")
        ledger.start_batch("b2", "w2@h", "p2")
        ledger.beat("p2", "w2@h", 10.0, t0 + 25)
        at_30, at_31 = ledger.work_by_worker(300, now=t0 + 30), ledger.work_by_worker(
            300, now=t0 + 31)
        ledger.stop_beats(t0 + 40, process="p2")
        ledger.beat("p2", "w2@h", 10.0, t0 + 41)  # a last beat racing its stop
        ledger.beat("p3", "w3@h", 10.0, t0 + 41)
        at_42 = ledger.work_by_worker(300, now=t0 + 42)
        ledger.start_batch("b1", "w3@h", "p3")  # the broker gave b1 back: w3 took it
        ledger.finish_batch("b2", 3)
        at_43 = ledger.work_by_worker(300, now=t0 + 43)
    finally:
        ledger.close()
    w1 = at_30["workers"]["w1@h"]
    assert (w1["state"], w1["running_batches"], w1["stalled_batches"]) == ("live", 1, 0)
    w1, w2 = at_31["workers"]["w1@h"], at_31["workers"]["w2@h"]
    assert w1["state"] == "gone" and w1["last_beat"] == datetime.fromtimestamp(t0, UTC).replace(
        tzinfo=None)
    assert (w1["running_batches"], w1["stalled_batches"], w1["stalled_requests"]) == (0, 1, 5)
    # its leases end by its last beat, one interval and lease_seconds
    assert w1["leases_end_by"] == datetime.fromtimestamp(t0 + 310, UTC).replace(tzinfo=None)
    assert at_31["stalled_batches"] == 1
    assert (w2["state"], w2["running_batches"], w2["stalled_batches"]) == ("live", 1, 0)
    w2, w3 = at_42["workers"]["w2@h"], at_42["workers"]["w3@h"]
    # stopped without finishing its batch (a cold shutdown): that batch is stalled too
    assert (w2["state"], w2["stalled_batches"]) == ("stopped", 1)
    assert w3["state"] == "live" and at_42["stalled_batches"] == 2
    w1, w2, w3 = (at_43["workers"][w] for w in ("w1@h", "w2@h", "w3@h"))
    assert (w1["state"], w1["stalled_batches"], w1["running_batches"]) == ("gone", 0, 0)
    assert (w2["state"], w2["stalled_batches"], w2["finished_batches"]) == ("stopped", 0, 1)
    assert (w3["state"], w3["running_batches"], w3["running_requests"]) == ("live", 1, 5)
    assert at_43["stalled_batches"] == 0


def test_a_process_beat_writes_from_its_own_thread_until_stopped(tmp_path: Path) -> None:
    from erasure.distributed.beat import ProcessBeat
    from erasure.ledger import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        beat = ProcessBeat(ledger, "w@h", 0.05).start()
        first = ledger.worker_beats()[0].beat_at
        time.sleep(0.4)
        later = ledger.worker_beats()[0]
        live = ledger.work_by_worker(20, now=later.beat_at)["workers"]["w@h"]["state"]
        beat.stop()
        ended = ledger.worker_beats()[0]
    finally:
        ledger.close()
    assert later.process == ledger.owner and later.beat_at > first and later.stopped_at is None
    assert live == "live"
    assert ended.stopped_at is not None


def _work(site: Site) -> dict[str, Any]:
    """`erasure status --json`'s work, checked against its published schema."""
    import jsonschema

    done = site.run("status", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    schema = Path(__file__).parent.parent / "docs" / "status.schema.json"
    jsonschema.validate(doc, json.loads(schema.read_text()))
    work: dict[str, Any] = doc.get("work") or {"workers": {}}
    return work


def _worker(work: dict[str, Any], prefix: str) -> dict[str, Any]:
    found = [w for name, w in work["workers"].items() if name.startswith(f"{prefix}-")]
    assert len(found) == 1, work
    return found[0]


def _batch(url: str, worker: str, *, finished: bool, timeout: float = 120) -> str:
    """The id of a batch ``worker`` started (and ``finished``), once there is one."""
    admin = sa.create_engine(url)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            with admin.connect() as c:
                found = c.execute(sa.text(
                    "SELECT id FROM work_batches WHERE worker LIKE :w AND started_at IS NOT "
                    "NULL AND (finished_at IS NOT NULL) = :f"),
                    {"w": f"{worker}-%", "f": finished}).scalar()
            if found:
                return str(found)
            time.sleep(0.05)
    finally:
        admin.dispose()
    raise AssertionError(f"worker {worker} started no batch")


def test_status_shows_a_killed_worker_gone_its_batch_stalled_and_a_stopped_one_stopped(
        tmp_path: Path) -> None:
    """Real workers beating every second: one is live in `erasure status --json` while
    idle, is killed (SIGKILL) mid-batch and shown gone once three beats are missed, its
    batch stalled; another worker takes the batch back and finishes it; stopped with
    SIGTERM, that one is shown stopped."""
    for url in _pg_database():
        site = Site(tmp_path / "site", url, RABBIT)
        try:
            site.write(latency_ms=700, host="heartbeat_seconds = 1")
            site.seed(0, 5)  # one batch
            victim = site.start_worker("hk")
            site.wait_ready("hk")
            time.sleep(4)  # more than three beats: it beats while idle, not only at start
            idle = _work(site)
            hk = _worker(idle, "hk")
            assert (hk["state"], hk["running_batches"], hk["stalled_batches"]) == ("live", 0, 0)
            assert hk["last_beat"] is not None and idle["queued_batches"] == 0

            sent = site.run("run", "--distributed")
            assert sent.returncode == 0, sent.stderr
            batch = _batch(url, "hk", finished=False)
            time.sleep(0.3)  # into the batch's steps
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            killed = time.monotonic()
            while (hk := _worker(work := _work(site), "hk"))["state"] != "gone":
                assert hk["state"] == "live", hk
                assert time.monotonic() - killed < 60, "still live a minute after SIGKILL"
                time.sleep(0.2)
            assert (hk["running_batches"], hk["stalled_batches"], hk["stalled_requests"]) == (
                0, 1, 5)
            assert work["stalled_batches"] == 1
            last = datetime.fromisoformat(hk["last_beat"])
            # leases end by the last beat, one interval and lease_seconds (20)
            ends = datetime.fromisoformat(hk["leases_end_by"]) - last
            assert timedelta(seconds=20) <= ends <= timedelta(seconds=22), ends
            text = site.run("status", timeout=120)
            assert text.returncode == 0, text.stderr
            assert "gone (" in text.stdout and "1 stalled batch(es)" in text.stdout, text.stdout

            # RabbitMQ gave the batch back when hk's connection dropped: the next worker
            # takes it, resumes it (the dead process's leases are free on this host)
            heir = site.start_worker("hs")
            site.wait_ready("hs")
            assert _batch(url, "hs", finished=True) == batch
            work = _work(site)
            hk, hs = _worker(work, "hk"), _worker(work, "hs")
            assert (hk["state"], hk["stalled_batches"]) == ("gone", 0)
            assert (hs["state"], hs["finished_batches"]) == ("live", 1)
            assert work["stalled_batches"] == 0

            heir.send_signal(signal.SIGTERM)  # warm shutdown of the worker
            assert heir.wait(timeout=60) == 0
            hs = _worker(_work(site), "hs")
            assert hs["state"] == "stopped", hs
        finally:
            site.stop()
            site.delete_queue()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_ledger_made_before_heartbeats_gets_them_when_opened(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """An older ledger (no worker_beats table, no work_batches.process) is upgraded by the
    first process that opens it: its workers beat and `erasure status` reads them."""
    from erasure.ledger import Ledger

    url = (f"sqlite:///{tmp_path / 'ledger.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_database").url)
    Ledger(url).close()
    old = sa.create_engine(url)
    with old.begin() as c:
        c.exec_driver_sql("DROP TABLE worker_beats")
        c.exec_driver_sql("ALTER TABLE work_batches DROP COLUMN process")
    old.dispose()
    ledger = Ledger(url)
    try:
        ledger.beat("p1", "w@h", 10.0, time.time())
        ledger.add_batches([("b1", 2)])
        ledger.start_batch("b1", "w@h", "p1")
        w = ledger.work_by_worker(300)["workers"]["w@h"]
    finally:
        ledger.close()
    assert (w["state"], w["running_batches"]) == ("live", 1)
