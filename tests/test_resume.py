"""kill -9 and concurrent runs: every request ends done, once, and nothing is erased twice.

A batch of erasure requests over three slow, file-backed memory systems is run by
``erasure run`` in a subprocess that is SIGKILLed after a delay (so kills land in find, act,
verify or finish of some batch), then ``erasure run`` is started again and must finish the
job: one receipt per request and system, a verifiable chain, the subjects' data gone, the
neighbours' data kept, and no finished delete repeated (the memory connector journals every
delete as ``delete <ref> done|already_done``).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from clihelpers import (
    describe,
    journal,
    ledger_query,
    memory_system,
    receipt_bodies,
    run_cli,
    seed,
    start_cli,
    stored_items,
    write_config,
)

from erasure.config import load_config
from erasure.models import RequestType
from erasure.orchestrator import Orchestrator, RequestSpec
from erasure.plugins import PluginHost

N = 60
SYSTEMS = ("crm", "helpdesk", "mail")


def subject_items(i: int) -> dict[str, dict[str, tuple[str, dict[str, str]]]]:
    """Subject i's items per system, and a lookalike neighbour's."""
    email, cid = f"s{i}@example.com", f"C-{i}"
    phone = f"+49151000000{i:02d}"  # shared with neighbour i: a weak identifier
    return {
        "crm": {
            f"contact/s{i}": ("contact", {"email": email, "customer_id": cid, "phone": phone}),
            f"contact/n{i}": ("contact", {"email": f"xs{i}@example.com", "phone": phone,
                                          "customer_id": f"C-{i}-9"}),
        },
        "helpdesk": {
            f"user/s{i}": ("user", {"email": email}),
            f"ticket/s{i}": ("ticket", {"customer_id": cid, "subject": "refund"}),
            f"user/n{i}": ("user", {"email": f"s{i}@example.org"}),
        },
        "mail": {
            f"msg/s{i}": ("message", {"email": email.upper()}),
            f"msg/n{i}": ("message", {"phone": phone, "email": f"n{i}@example.net"}),
        },
    }


def is_subject(ref: str) -> bool:
    return ref.split("/", 1)[1].startswith("s")


def make_world(tmp_path: Path, *, latency_ms: float = 30, batch_size: int = 10,
               ) -> tuple[Path, list[str], dict[str, Path]]:
    paths = {s: tmp_path / f"{s}.json" for s in SYSTEMS}
    for s in SYSTEMS:
        items = {}
        for i in range(N):
            items.update(subject_items(i)[s])
        seed(paths[s], items)
    config = write_config(
        tmp_path, {s: memory_system(p, latency_ms=latency_ms) for s, p in paths.items()},
        host={"batch_size": batch_size, "strong_identifiers": ["email", "customer_id"]})
    plugins = PluginHost.load()
    cfg = load_config(config, known_connectors={n: plugins.registry.get(n)
                                                for n in plugins.registry.names()})
    orch = Orchestrator(cfg, plugins)
    try:
        ids = orch.submit_many([
            RequestSpec(RequestType.ERASURE,
                        (("email", f"s{i}@example.com"), ("customer_id", f"C-{i}")),
                        ticket=f"T-{i}", verified=True)
            for i in range(N)
        ])
    finally:
        orch.close()
    return config, ids, paths


def assert_all_done_once(config: Path, ids: list[str], paths: dict[str, Path]) -> None:
    # every request done, completed in every system but where its neighbour's items, found
    # through the phone they share, were left for review and nobody decided on them
    rows = ledger_query(config, "SELECT id, status, outcome FROM requests")
    assert {r[0] for r in rows} == set(ids)
    assert {(r[1], r[2]) for r in rows} == {("done", "partial")}, Counter(r[1:] for r in rows)
    # exactly one receipt per (request, system)
    bodies = receipt_bodies(config)
    per = Counter((b["request"], b["system"]) for b in bodies)
    assert set(per) == {(r, s) for r in ids for s in SYSTEMS}
    assert [k for k, n in per.items() if n != 1] == []
    assert {(b["system"], b["outcome"], tuple(b["not_acted"])) for b in bodies} == {
        ("crm", "partial", ("1 review items undecided",)), ("helpdesk", "completed", ()),
        ("mail", "partial", ("1 review items undecided",))}
    # the chain and signatures verify
    proc = run_cli("receipts", "verify", config=config)
    assert proc.returncode == 0, describe(proc)
    assert f"OK: {N * len(SYSTEMS)} receipts" in proc.stdout
    for s, path in paths.items():
        left = set(stored_items(path))
        expected_left = {ref for i in range(N) for ref in subject_items(i)[s]
                         if not is_subject(ref)}
        assert left == expected_left, f"{s}: {sorted(left ^ expected_left)[:5]}"
        lines = journal(path)
        done = Counter(ref for ref, status in lines if status == "done")
        # a finished delete is never repeated (a repeat is journalled as already_done)
        assert [r for r, n in done.items() if n > 1] == []
        # every subject item went through delete. (Not "exactly one done line each": the
        # memory connector journals after rewriting its file, so a kill between the two
        # loses the done line and the resumed run journals already_done.)
        assert {ref for ref, _ in lines} == {ref for i in range(N)
                                             for ref in subject_items(i)[s] if is_subject(ref)}
        # neighbours were never even asked to be deleted
        assert [r for r, _ in journal(path) if not is_subject(r)] == []


def assert_killed_mid_run(config: Path) -> None:
    """The kill left work to resume: some request still open."""
    (open_left,) = ledger_query(config, "SELECT count(*) FROM requests WHERE status != 'done'")
    assert open_left[0] > 0, "every request was done before the kill"


@pytest.mark.parametrize("delay", [0.6, 1.2])
def test_kill_9_then_resume(tmp_path, delay):
    # Slow enough systems that an uninterrupted run takes about three seconds.
    config, ids, paths = make_world(tmp_path, latency_ms=60)
    proc = start_cli("run", config=config)
    time.sleep(delay)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert killed, "the run ended before the kill: nothing was resumed"
    assert_killed_mid_run(config)
    rerun = run_cli("run", config=config, timeout=120)
    assert rerun.returncode == 1 and "partial" in rerun.stderr, describe(rerun)
    assert_all_done_once(config, ids, paths)


def test_kill_9_twice_then_resume(tmp_path):
    config, ids, paths = make_world(tmp_path, latency_ms=60)
    for delay in (0.9, 0.7):
        proc = start_cli("run", config=config)
        time.sleep(delay)
        assert proc.poll() is None, "the run ended before the kill: nothing was resumed"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert_killed_mid_run(config)
    rerun = run_cli("run", config=config, timeout=120)
    assert rerun.returncode == 1 and "partial" in rerun.stderr, describe(rerun)
    assert_all_done_once(config, ids, paths)


def test_two_runs_at_once_share_the_work(tmp_path):
    config, ids, paths = make_world(tmp_path)
    procs = [start_cli("run", config=config) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        # partial (the neighbours' items undecided) when it finished any, else 0
        assert p.returncode in (0, 1) and "failed" not in err, f"{out}\n{err}"
    assert_all_done_once(config, ids, paths)


def wait_for(ready, proc, timeout: float = 20) -> bool:
    """Poll until ``ready()`` (True) or the run ended (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            if ready():
                return True
        except Exception:  # the ledger may not exist yet, or be mid-checkpoint
            pass
        time.sleep(0.002)
    return False


@pytest.mark.parametrize("moment", ["acting", "first-delete-journalled"])
def test_kill_9_at_a_given_moment_then_resume(tmp_path, moment):
    """Killed while deletes are under way, or right after one system's delete: the
    resumed run repeats at most idempotent deletes (journalled as already_done), never a
    second done, and writes each receipt once."""
    config, ids, paths = make_world(tmp_path)
    if moment == "first-delete-journalled":
        def ready() -> bool:
            return any(journal(p) for p in paths.values())
    else:
        def ready() -> bool:
            return bool(ledger_query(config, "SELECT 1 FROM tasks WHERE stage = ? LIMIT 1",
                                     moment))
    proc = start_cli("run", config=config)
    caught = wait_for(ready, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert caught, f"the run ended before {moment}"
    rerun = run_cli("run", config=config, timeout=120)
    assert rerun.returncode == 1 and "partial" in rerun.stderr, describe(rerun)
    assert_all_done_once(config, ids, paths)
