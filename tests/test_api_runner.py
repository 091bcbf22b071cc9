"""``erasure serve``'s runner is a process of its own: started with the server, started again
when it dies, and never left behind when the server stops or is killed."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from apihelpers import Server, start_server, wait_for
from clihelpers import ledger_query, memory_system, seed, stored_items, write_config
from test_api import _erasure, _tokens

CRM = {
    "contact/1": ("contact", {"email": "bob@example.org"}),
    "contact/2": ("contact", {"email": "ann@example.org"}),
    "contact/3": ("contact", {"email": "cat@example.org"}),
}


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a container's init may never reap one)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _runner_pids(server: Server) -> list[int]:
    return [int(p) for p in re.findall(r"runner process started \(pid (\d+)\)",
                                       "".join(server.stderr))]


def _until(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _serve(tmp_path: Path) -> tuple[Server, Path, str, Path]:
    crm = tmp_path / "crm.json"
    seed(crm, CRM)
    config = write_config(tmp_path, {"crm": memory_system(crm)},
                          host={"api": {"poll_seconds": 30}})
    server = start_server(config)
    _until("the runner started", lambda: _runner_pids(server))
    return server, crm, _tokens(config, "admin")["admin"], config


def test_a_runner_that_dies_is_started_again_and_runs_what_comes_next(tmp_path: Path
                                                                      ) -> None:
    server, crm, token, config = _serve(tmp_path)
    try:
        with server.client(token) as http:
            first = http.post("/v1/requests", json=_erasure("r-1", "bob@example.org"))
            wait_for(http, first.json()["id"], ("completed",))
            (dead,) = _runner_pids(server)
            assert dead != server.proc.pid and _alive(dead)
            os.kill(dead, signal.SIGKILL)  # an out-of-memory kill, say
            _until("a new runner", lambda: len(_runner_pids(server)) == 2)
            assert "runner process ended" in "".join(server.stderr)
            # woken at once (the poll is 30 s): the new runner got the wake-up
            second = http.post("/v1/requests", json=_erasure("r-2", "ann@example.org"))
            wait_for(http, second.json()["id"], ("completed",), timeout=20)
            # (not the new runner's first run, which does its own upkeep)
            third = http.post("/v1/requests", json=_erasure("r-3", "cat@example.org"))
            wait_for(http, third.json()["id"], ("completed",), timeout=20)
            # the runs left their upkeep to the first pause: the key epoch rotates then
            _until("the key epoch rotated", lambda: ledger_query(
                config, "SELECT value FROM ledger_meta WHERE name = 'key_rotation_due'")
                == [("0",)], timeout=15)
    finally:
        server.stop()
    assert stored_items(crm) == {}
    _until("the runner ended with the server", lambda: not _alive(_runner_pids(server)[-1]),
           timeout=15)


def test_a_killed_server_leaves_no_runner_behind(tmp_path: Path) -> None:
    server, _crm, _token, _config = _serve(tmp_path)
    (runner,) = _runner_pids(server)
    server.proc.kill()
    server.proc.wait()
    # the wake pipe reads end-of-file: the runner ends after the run it is in
    _until("the orphaned runner ended", lambda: not _alive(runner), timeout=15)
