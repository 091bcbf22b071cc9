"""Losing the ledger mid-run (issue 10, item 7): PostgreSQL terminates the run's
connections; the run ends with one line and exit 1, not a traceback, and the next run
finishes every request, each exactly once."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from clihelpers import cli_env, memory_system, run_cli, seed, stored_items, write_config

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
N = 60


@pytest.fixture
def pg_url(pg_database):
    return pg_database.name, pg_database.admin


def test_a_run_that_loses_its_ledger_stops_cleanly_and_the_next_resumes(pg_url, tmp_path):
    name, admin = pg_url
    crm = tmp_path / "crm.json"
    seed(crm, {f"c/{i}": ("contact", {"email": f"p{i}@example.org"}) for i in range(N)})
    config = write_config(tmp_path, {"crm": memory_system(crm, latency_ms=40)},
                          host={"batch_size": 5, "ledger": {"env": "T_LEDGER"}})
    env = cli_env({"T_LEDGER": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"})
    rows = tmp_path / "r.csv"
    rows.write_text("type,email,verified\n" + "".join(
        f"erasure,p{i}@example.org,yes\n" for i in range(N)), encoding="utf-8")
    assert run_cli("request", "import", str(rows), config=config, env=env).returncode == 0

    stop = threading.Event()

    watcher = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")

    def under_way() -> bool:
        """The run holds a lease: it has opened the ledger and claimed work (a fixed sleep
        cut the connections of a slow start while it was still opening the ledger)."""
        try:
            with watcher.connect() as c:
                return bool(c.execute(sa.text(
                    "SELECT count(*) FROM requests WHERE lease_owner IS NOT NULL")).scalar_one())
        except sa.exc.DBAPIError:
            return False

    def cut() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and not under_way() and time.monotonic() < deadline:
            time.sleep(0.05)
        while not stop.is_set():
            with admin.connect() as c:
                c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            time.sleep(0.05)

    cutter = threading.Thread(target=cut)
    cutter.start()
    try:
        proc = run_cli("run", config=config, env=env, timeout=120)
    finally:
        stop.set()
        cutter.join()
        watcher.dispose()
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("error: the ledger database is unavailable")
    again = run_cli("run", config=config, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    with engine.connect() as c:
        open_ = c.execute(sa.text("SELECT count(*) FROM requests WHERE status <> 'done'"))
        per = c.execute(sa.text("SELECT count(*), count(DISTINCT request_id) FROM receipts"))
        assert open_.scalar_one() == 0
        assert tuple(per.one()) == (N, N)  # one receipt per request: none twice
    engine.dispose()
    assert stored_items(crm) == {}
