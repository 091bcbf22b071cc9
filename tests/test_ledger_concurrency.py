"""Processes that meet on a new ledger: the schema is made once, under a lock, and every
request recorded at the same time is there afterwards (issue 20 item 5)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from clihelpers import cli_env, memory_system, start_cli, write_config

N = 6


def _config(tmp_path: Path) -> Path:
    return write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")},
                        host={"ledger": {"env": "T_LEDGER_URL"}})


def _finish(procs: list) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append((p.returncode, stdout, stderr))
    return out


def test_concurrent_runs_on_a_new_postgresql_ledger_all_open_it(tmp_path, pg_database) -> None:
    config = _config(tmp_path)
    env = cli_env({"T_LEDGER_URL": pg_database.url})
    results = _finish([start_cli("run", config=config, env=env) for _ in range(N)])
    assert [r[0] for r in results] == [0] * N, [r[2] for r in results if r[0]]


def test_concurrent_request_creates_record_every_request(tmp_path, pg_database) -> None:
    config = _config(tmp_path)
    env = cli_env({"T_LEDGER_URL": pg_database.url})
    procs = [start_cli("request", "create", "--type", "erasure", "--email",
                       f"p{n}@example.com", "--verified", "--ticket", f"T-{n}",
                       config=config, env=env) for n in range(N)]
    # and the same request three times at once: recorded once, each told its id
    procs += [start_cli("request", "create", "--type", "erasure", "--email",
                        "same@example.com", "--verified", "--ticket", "T-same",
                        config=config, env=env) for _ in range(3)]
    results = _finish(procs)
    assert [r[0] for r in results] == [0] * (N + 3), [r[2] for r in results if r[0]]
    ids = [r[1].strip() for r in results]
    assert len(set(ids[:N])) == N and len(set(ids[N:])) == 1
    engine = sa.create_engine(pg_database.url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM requests")).scalar() == N + 1
    engine.dispose()
    told = [r[2] for r in results[N:] if "recorded before" in r[2]]
    # two of the three were told it existed already
    assert len(told) == 2, [r[2] for r in results[N:]]


def test_the_same_request_recorded_twice_at_once_is_one(make_orch, monkeypatch,
                                                       pg_database) -> None:
    """The second recording waits for the first's transaction and finds its request,
    instead of failing on the unique dedupe key (PostgreSQL, read committed)."""
    import threading

    from erasure import RequestType
    from erasure.orchestrator import RequestSpec

    monkeypatch.setenv("T_LEDGER_URL", pg_database.url)
    config = {"erasure": {"ledger": {"env": "T_LEDGER_URL"}},
              "systems": {"crm": {"connector": "memory"}}}
    first, second = make_orch(config), make_orch(config)
    spec = RequestSpec(RequestType.ERASURE, (("email", "same@example.com"),), ticket="T-1",
                       verified=True)
    assert second.ledger.count_requests() == 0  # opened (schema made) before the race
    inserted, go_on = threading.Event(), threading.Event()
    seal = first.ciphers.seal

    def slow_seal(conn, raw):  # the first's row is inserted, its transaction still open
        seal(conn, raw)
        inserted.set()
        go_on.wait(30)

    monkeypatch.setattr(first.ciphers, "seal", slow_seal)
    got: dict[str, object] = {}
    a = threading.Thread(target=lambda: got.setdefault("first", first.record(spec)))
    b = threading.Thread(target=lambda: got.setdefault("second", _catch(second, spec)))
    a.start()
    assert inserted.wait(30)
    b.start()
    b.join(1.0)  # the second is under way (waiting) while the first's transaction is open
    go_on.set()
    a.join(30)
    b.join(30)
    rid, new = got["first"]
    assert new and got["second"] == (rid, False)
    assert first.ledger.count_requests() == 1


def _catch(orch, spec):
    try:
        return orch.record(spec)
    except Exception as exc:  # noqa: BLE001 - the failure this test is about
        return exc


def _open_ledger(folder: Path, barrier: object) -> None:
    import random
    import time

    from erasure.ledger.db import Database

    barrier.wait()  # type: ignore[attr-defined]
    time.sleep(random.uniform(0, 0.03))  # staggered: one converts while another opens
    Database(f"sqlite:///{folder / 'ledger.db'}").close()


def test_processes_opening_a_new_sqlite_ledger_at_once_all_open_it(tmp_path: Path) -> None:
    """Two `request create` from a script on a fresh state folder: each makes the folder
    and turns the new database to WAL at the same moment; the loser of either race waits,
    it never fails ("File exists", "database is locked")."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for n in range(20):
        folder = tmp_path / f"round{n}" / "state"
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open_ledger, args=(folder, barrier)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 4, n
