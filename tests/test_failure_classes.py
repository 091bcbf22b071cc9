"""Failure classes through the command line: a fixable failure never ends a request.

transient: deferred to a later run; blocked: waits for an operator (`erasure status` shows
it, `erasure retry` resumes it, `erasure run` leaves it alone); permanent: the task fails.
A system that could not be searched never reads as "found 0".
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clihelpers import (
    cli_env,
    describe,
    error_lines,
    journal,
    ledger_query,
    memory_system,
    parse_table,
    receipt_bodies,
    run_cli,
    seed,
    stored_items,
    table_row,
    write_config,
)

ALICE = {"contact/1": ("contact", {"email": "alice@example.com", "customer_id": "C-1"})}
BOB = {"contact/2": ("contact", {"email": "bob@example.com"})}
RID = re.compile(r"\br-[0-9a-f]{16}\b")
STATUS = ("request", "ticket", "type", "status", "received", "due", "days left")
TASKS = ("request", "system", "state", "next try (UTC)", "last error")
RECEIPT = ("system", "action", "outcome", "found", "acted", "review", "failed", "residue",
           "calls")
PLAN = ("system", "connector", "policy", "action", "found", "would act on", "review only")


def _world(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A seeded CRM, and an archive configured in a folder that does not exist yet (an
    operator's mistake, fixed later)."""
    crm = tmp_path / "crm.json"
    seed(crm, {**ALICE, **BOB})
    archive = tmp_path / "later" / "archive.json"
    config = write_config(tmp_path, {"crm": memory_system(crm),
                                     "archive": memory_system(archive)})
    return config, crm, archive


def test_a_blocked_system_keeps_the_request_open_until_retry(tmp_path):
    config, crm, archive = _world(tmp_path)
    proc = run_cli("erase", "--email", "alice@example.com", "--verified", "--ticket", "T-1",
                   config=config)
    assert proc.returncode == 1, describe(proc)
    (rid,) = set(RID.findall(proc.stdout))
    assert any(f"{rid} archive: blocked" in line and "store folder does not exist" in line
               for line in error_lines(proc)), describe(proc)
    # Nothing acted anywhere: the plan is not whole while a system could not be searched.
    assert set(stored_items(crm)) == {"contact/1", "contact/2"} and journal(crm) == []
    assert receipt_bodies(config, rid) == []

    # `erasure run` does not burn it (nor even call the system): still open, still blocked.
    # Nothing is due until then: the run says nothing at all (cron mails any output).
    again = run_cli("run", config=config)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", ""), describe(again)
    status = run_cli("status", config=config)
    assert table_row(status.stdout, STATUS, rid)["status"] == "open", status.stdout
    task = next(r for r in parse_table(status.stdout, TASKS)
                if r["request"] == rid and r["system"] == "archive")
    assert task["state"].startswith("blocked"), task
    assert "store folder does not exist" in task["last error"], task
    assert task["next try (UTC)"].startswith("erasure retry"), task
    assert receipt_bodies(config, rid) == []
    # the identifiers are kept (encrypted) while it waits
    assert ledger_query(config, "SELECT identifiers IS NOT NULL FROM requests") == [(1,)]

    # The operator fixes the cause and resumes it.
    archive.parent.mkdir()
    seed(archive, {"mail/9": ("mail", {"email": "alice@example.com"})})
    proc = run_cli("retry", rid, config=config)
    assert proc.returncode == 0 and "archive" in proc.stdout, describe(proc)
    proc = run_cli("run", config=config)
    assert proc.returncode == 0, describe(proc)
    outcomes = {b["system"]: b["outcome"] for b in receipt_bodies(config, rid)}
    assert outcomes == {"crm": "completed", "archive": "completed"}
    assert set(stored_items(crm)) == {"contact/2"}
    assert set(stored_items(archive)) == set()


def test_retry_of_a_request_with_nothing_blocked_or_failed_is_refused(tmp_path):
    config, _crm, archive = _world(tmp_path)
    archive.parent.mkdir()
    proc = run_cli("request", "create", "--type", "erasure", "--email", "bob@example.com",
                   "--verified", config=config)
    (rid,) = RID.findall(proc.stdout)
    proc = run_cli("retry", rid, config=config)
    assert proc.returncode == 2 and "no blocked, failed or held task" in proc.stderr, describe(proc)


def test_close_ends_a_blocked_request_failed_with_receipts(tmp_path):
    config, crm, _archive = _world(tmp_path)
    proc = run_cli("erase", "--email", "alice@example.com", "--verified", config=config)
    (rid,) = set(RID.findall(proc.stdout))
    proc = run_cli("close", rid, config=config)
    assert proc.returncode == 2 and "--reason" in proc.stderr, describe(proc)
    proc = run_cli("close", rid, "--reason", "archive retired; see ticket OPS-7", config=config)
    assert proc.returncode == 0, describe(proc)
    assert f"{rid}: closed, failed" in proc.stdout, describe(proc)
    bodies = {b["system"]: b for b in receipt_bodies(config, rid)}
    assert {s: b["outcome"] for s, b in bodies.items()} == {"crm": "failed",
                                                            "archive": "failed"}
    assert any("closed by an operator" in e for e in bodies["archive"]["errors"])
    assert not any("OPS-7" in str(b) for b in bodies.values())  # the note is hashed
    status = run_cli("status", "--all", config=config)
    assert table_row(status.stdout, STATUS, rid)["status"] == "done: failed"
    assert ledger_query(config, "SELECT identifiers FROM requests") == [(None,)]
    assert set(stored_items(crm)) == {"contact/1", "contact/2"}  # nothing was acted on
    proc = run_cli("close", rid, "--reason", "again", config=config)
    assert proc.returncode == 2 and "has ended" in proc.stderr, describe(proc)


def test_a_dry_run_that_could_not_search_a_system_exits_1_naming_it(tmp_path):
    config, _crm, _archive = _world(tmp_path)
    for args in (["find", "--dry-run"], ["erase", "--dry-run", "--verified"]):
        proc = run_cli(*args, "--email", "alice@example.com", config=config)
        assert proc.returncode == 1, describe(proc)
        lines = [x for x in error_lines(proc) if not x.startswith("WARNING")]  # new keys
        assert lines == ["archive: could not be searched: BlockedError: store folder does "
                         "not exist"], describe(proc)
        row = table_row(proc.stdout, PLAN, "archive")
        assert row["found"] == "?", row  # never "found 0"
        assert "expansion stopped" not in proc.stdout
        assert table_row(proc.stdout, PLAN, "crm")["found"] == "1"


def test_a_find_that_could_not_search_a_system_exits_1_naming_it(tmp_path):
    config, _crm, _archive = _world(tmp_path)
    proc = run_cli("find", "--email", "alice@example.com", config=config)
    assert proc.returncode == 1, describe(proc)
    assert any(line.startswith("archive: could not be searched: BlockedError")
               for line in error_lines(proc)), describe(proc)


def test_a_transient_outage_defers_into_the_future_and_a_dry_run_exits_1(tmp_path):
    crm = tmp_path / "crm.json"
    seed(crm, ALICE)
    config = write_config(tmp_path, {"crm": memory_system(crm, fail_first_calls=100,
                                                          max_attempts=2)},
                          host={"retry": {"initial_wait": 0, "max_wait": 0}})
    proc = run_cli("find", "--dry-run", "--email", "alice@example.com", config=config)
    assert proc.returncode == 1, describe(proc)
    assert [line.split(":")[0] for line in error_lines(proc)
            if not line.startswith("WARNING")] == ["crm"], describe(proc)
    assert "simulated outage" in proc.stderr

    started = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    proc = run_cli("erase", "--email", "alice@example.com", "--verified", config=config)
    assert proc.returncode == 0, describe(proc)  # waiting for a later run is no error
    (rid,) = set(RID.findall(proc.stdout))
    task = table_row(run_cli("status", config=config).stdout, TASKS, rid)
    assert task["state"].startswith("pending (deferred 1x)"), task
    assert datetime.strptime(task["next try (UTC)"], "%Y-%m-%d %H:%M") >= started, task
    assert set(stored_items(crm)) == {"contact/1"}


# bounded time: a frozen or closing endpoint --------------------------------------------

class _Endpoint:
    """A TCP endpoint on 127.0.0.1 that either never answers (``frozen``: connections are
    accepted and then hear nothing) or accepts and closes each connection at once
    (``closing``). The time of every connection is kept: the span from the first to the
    last is the time the command spent on the system, whatever its own start-up cost."""

    def __init__(self, mode: str) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.mode = mode
        self.stop = threading.Event()
        self.connected: list[float] = []
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept_each, daemon=True).start()

    def _accept_each(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connected.append(time.monotonic())
            if self.mode == "closing":
                conn.close()
            else:
                self._held.append(conn)  # open, silent

    def span(self) -> float:
        """Seconds from the first connection to the last."""
        return self.connected[-1] - self.connected[0] if self.connected else 0.0

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        for conn in self._held:
            conn.close()


def _system(connector: str, port: int) -> dict[str, object]:
    if connector == "mail":
        return {"connector": "mail", "backend": "imap", "host": "127.0.0.1", "port": port,
                "security": "plain", "username": "archive", "password": {"env": "PW"},
                "timeout": 1}
    return {"connector": "s3", "endpoint_url": f"http://127.0.0.1:{port}",
            "access_key_id": {"env": "PW"}, "secret_access_key": {"env": "PW"},
            "connect_timeout": 1, "read_timeout": 1, "rules": [{"bucket": "exports"}]}


@pytest.mark.parametrize(("connector", "mode"), [("mail", "frozen"), ("s3", "frozen"),
                                                 ("mail", "closing")])
def test_a_frozen_or_closing_endpoint_returns_within_the_budget_and_waits(
        tmp_path, connector, mode):
    endpoint = _Endpoint(mode)
    try:
        config = write_config(tmp_path, {"archive": _system(connector, endpoint.port)},
                              host={"retry": {"max_attempts": 5, "initial_wait": 0.5,
                                              "system_budget_seconds": 2}})
        env = cli_env({"PW": "not-a-real-secret"}, block=None)
        started = time.monotonic()
        proc = run_cli("erase", "--email", "alice@example.com", "--verified", config=config,
                       env=env, timeout=60)
        took = time.monotonic() - started
        # The time spent on the system, read at the endpoint (first to last connection), so
        # that a loaded machine's slow start-up (other test workers, boto3's import) does not
        # pass for a slow system call. The budget counts from the first failure: a first
        # attempt (s3: botocore's two 1 s tries), then retries within the 2 s budget (about
        # 5 s in all); without the budget, five attempts and their waits span over 15 s.
        assert endpoint.connected, describe(proc)
        assert endpoint.span() < 8, f"attempts spanned {endpoint.span():.1f} s\n{describe(proc)}"
        # and no call hangs past its socket timeout after the last attempt
        assert took < 30, f"{took:.0f} s in all\n{describe(proc)}"
        assert proc.returncode == 0, describe(proc)  # a system that is down only waits
        (rid,) = set(RID.findall(proc.stdout))
        status = run_cli("status", config=config, env=env)
        task = table_row(status.stdout, TASKS, rid)
        assert task["state"].startswith("pending (deferred 1x)"), task
        assert "TransientError" in task["last error"], task
        next_try = datetime.strptime(task["next try (UTC)"], "%Y-%m-%d %H:%M")
        assert next_try >= datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
        if mode == "closing":
            return
        # a dry run against it says it could not be searched, and returns as soon
        proc = run_cli("find", "--dry-run", "--email", "alice@example.com", config=config,
                       env=env, timeout=60)
        assert proc.returncode == 1, describe(proc)
        assert "archive: could not be searched: TransientError" in proc.stderr
    finally:
        endpoint.close()
