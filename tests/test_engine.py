"""The durable engine: work that waits (jobs, confirmations, deferrals), resumes exactly
once, keeps its leases and tells its hooks at least once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from erasure import Finding, ItemOutcome, ItemStatus, PermanentError, RequestType, hookimpl
from erasure.errors import UsageError
from erasure.leases import new_owner, owner_alive
from erasure.orchestrator import RequestSpec
from erasure.testing import MemoryConnector
from erasure.testing.memory import MemoryProcessorConnector

ALICE = (("email", "alice@example.com"),)


def mem(**extra: Any) -> dict[str, Any]:
    return {"connector": "memory", **extra}


def seed(orch, system: str, items: dict) -> None:
    orch.systems[system].connector().seed(items)


def count(orch, system: str) -> int:
    return orch.systems[system].connector().count()


def bodies(orch, rid: str) -> dict[str, dict[str, Any]]:
    return {r["body"]["system"]: r["body"] for r in orch.ledger.receipts(rid)}


def stages(orch, rid: str) -> dict[str, str]:
    return {t.system: t.stage for t in orch.ledger.tasks_for([rid])}


class Crash(BaseException):
    """Stands for the process dying where it is raised."""


def expire_leases(orch) -> None:
    """The dead process's leases run out."""
    with orch.ledger.tx() as conn:
        conn.exec_driver_sql("UPDATE requests SET lease_owner = NULL, lease_until = NULL")


# jobs the system finishes later --------------------------------------------------------

def test_a_job_answers_pending_then_done_after_polls(make_orch) -> None:
    orch = make_orch({"systems": {"crm": mem(pending_polls=3)}})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"}),
                       "c/2": ("contact", {"email": "alice@example.com"}),
                       "c/9": ("contact", {"email": "bob@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    for polls in range(1, 3):
        summary = orch.run()
        assert summary.finished == [] and stages(orch, rid) == {"crm": "waiting"}, polls
        assert count(orch, "crm") == 3  # the job has not run yet
    assert orch.run().finished == [rid]
    assert count(orch, "crm") == 1
    body = bodies(orch, rid)["crm"]
    assert body["outcome"] == "completed" and body["counts"]["done"] == 2
    assert body["verification"] == {"performed": True, "ok": True}
    assert orch.systems["crm"].connector().submissions() == [
        orch.systems["crm"].context("delete", [rid]).idempotency_key(rid)]
    assert orch.ledger.get_request(rid).identifiers is None


class SubmitThenDie(MemoryConnector):
    """Submits the job, then the process dies before the ledger hears of it."""

    name = "submit-then-die"
    armed = True

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        outcomes = list(super().delete(findings))
        if type(self).armed:
            type(self).armed = False
            raise Crash()
        return iter(outcomes)


class Plugin:
    @hookimpl
    def erasure_register_connectors(self, registry) -> None:
        registry.add(SubmitThenDie)
        registry.add(AlwaysDenied)


def test_killed_between_submit_and_ledger_write_submits_once(make_orch, tmp_path) -> None:
    config = {"systems": {"crm": {"connector": "submit-then-die", "pending_polls": 1,
                                  "path": str(tmp_path / "crm.json")}}}
    SubmitThenDie.armed = True
    orch = make_orch(config, plugins=(Plugin(),))
    seed(orch, "crm", {f"c/{i}": ("contact", {"email": f"p{i}@example.com"}) for i in range(4)})
    ids = orch.submit_many([RequestSpec(RequestType.ERASURE, (("email", f"p{i}@example.com"),),
                                        verified=True) for i in range(4)])
    with pytest.raises(Crash):
        orch.run()
    assert set(stages(orch, ids[0]).values()) == {"acting"}  # the ledger never heard back
    expire_leases(orch)
    resumed = make_orch(config, plugins=(Plugin(),))
    # asks again: the same keys get the jobs already submitted, which are then polled
    assert sorted(resumed.run().finished) == sorted(ids)
    assert {resumed.ledger.get_request(r).outcome for r in ids} == {"completed"}
    keys = resumed.systems["crm"].connector().submissions()
    assert len(keys) == len(set(keys)) == 4, "a job was submitted twice"
    assert resumed.systems["crm"].connector().count() == 0


# confirmations -------------------------------------------------------------------------

def processor_world(make_orch, **host: Any):
    MemoryProcessorConnector.inboxes.clear()
    now = [1_000_000.0]
    orch = make_orch({"erasure": host, "systems": {
        "crm": mem(), "carrier": {"connector": "memory-processor", "inbox": "carrier"}}},
        clock=lambda: now[0])
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    return orch, now


def test_a_processor_is_told_once_and_the_request_waits_for_its_confirmation(make_orch):
    orch, now = processor_world(make_orch, confirmation_reminder_days=7)
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True, ticket="T-1"))
    summary = orch.run()
    assert summary.finished == [] and summary.waiting == {"awaiting_confirmation": 1}
    inbox = MemoryProcessorConnector.inboxes["carrier"]
    assert [n["identifiers"] for n in inbox.values()] == [["alice@example.com"]]
    assert stages(orch, rid) == {"crm": "done", "carrier": "awaiting_confirmation"}
    now[0] += 8 * 86400  # a week later: a reminder, not a second notice
    orch.run()
    orch.run()  # nothing due: no second reminder
    assert len(inbox) == 1
    assert [len(n["reminders"]) for n in inbox.values()] == [1]
    causes = [e["cause"] for e in orch.ledger.task_events(rid) if e["system"] == "carrier"]
    assert "no confirmation yet: reminder sent" in causes
    now[0] += 8 * 86400  # another week: the second reminder
    orch.run()
    assert [len(n["reminders"]) for n in inbox.values()] == [2]
    orch.confirm(rid, "carrier", "CARRIER-5521")
    got = bodies(orch, rid)
    assert got["carrier"]["outcome"] == "completed"
    assert got["carrier"]["confirmation"] == "CARRIER-5521"
    assert got["carrier"]["counts"]["found"] == 1 and got["crm"]["outcome"] == "completed"
    assert orch.ledger.get_request(rid).outcome == "completed"


def test_a_processor_is_told_the_persons_identifiers_and_nobody_elses(make_orch) -> None:
    """Phones are too weak to match by, but the phone on the person's own contact (and one
    they gave) is theirs: a carrier must hear of it. A neighbour's phone is never told."""
    orch, _now = processor_world(make_orch)
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com",
                                           "phone": "+4915112345678"}),
                       "c/2": ("contact", {"email": "bob@example.net",
                                           "phone": "+4915199999999"}),
                       "c/3": ("contact", {"email": "carol@example.net",
                                           "phone": "+4915112345678"})})
    orch.submit(RequestSpec(RequestType.ERASURE, (*ALICE, ("phone", "+4930123456")),
                            verified=True))
    orch.run()
    (notice,) = MemoryProcessorConnector.inboxes["carrier"].values()
    assert notice["identifiers"] == ["+4915112345678", "+4930123456", "alice@example.com"]


def test_a_system_that_cannot_be_searched_never_reports_a_search(make_orch) -> None:
    orch, _now = processor_world(make_orch)
    rid = orch.submit(RequestSpec(RequestType.ACCESS, ALICE, verified=True))
    orch.run()
    assert bodies(orch, rid)["carrier"]["outcome"] == "not_covered"
    assert MemoryProcessorConnector.inboxes.get("carrier", {}) == {}


def test_confirm_names_the_problem(make_orch) -> None:
    from erasure import UsageError

    orch, _now = processor_world(make_orch)
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    with pytest.raises(UsageError, match="not awaiting confirmation"):
        orch.confirm(rid, "crm", "x")
    orch.run()
    with pytest.raises(UsageError, match="no system 'nope'"):
        orch.confirm(rid, "nope", "x")
    with pytest.raises(UsageError, match="reference"):
        orch.confirm(rid, "carrier", "  ")
    with pytest.raises(UsageError, match="reference"):
        orch.confirm(rid, "carrier", "bob@example.net confirmed")


# retry ---------------------------------------------------------------------------------

class AlwaysDenied(MemoryConnector):
    """Refuses deletes until the operator fixes its permission (``allowed``)."""

    name = "denied"
    allowed = False

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        if not type(self).allowed:
            raise PermanentError("delete not permitted for this API user")
        return super().delete(findings)


def test_retry_reopens_a_failed_task_of_an_open_request(make_orch) -> None:
    MemoryProcessorConnector.inboxes.clear()
    AlwaysDenied.allowed = False
    orch = make_orch({"systems": {
        "desk": {"connector": "denied"},
        "carrier": {"connector": "memory-processor", "inbox": "c2"}}}, plugins=(Plugin(),))
    seed(orch, "desk", {"u/1": ("user", {"email": "alice@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    summary = orch.run()
    assert summary.failed_tasks == 1 and not summary.ok
    assert stages(orch, rid) == {"desk": "done", "carrier": "awaiting_confirmation"}
    AlwaysDenied.allowed = True  # the permission is fixed
    assert orch.retry(rid) == ["desk"]
    orch.run()
    orch.confirm(rid, "carrier", "ok")
    assert bodies(orch, rid)["desk"]["outcome"] == "completed"
    assert orch.systems["desk"].connector().count() == 0


class TaskHook:
    """Records every task change it is told of."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str, str]] = []
        self.event_ids: list[str] = []

    @hookimpl
    def erasure_task_changed(self, request_id, system, old, new, cause, event_id) -> None:
        self.changes.append((system, old, new, cause))
        self.event_ids.append(event_id)


def test_confirm_and_retry_tell_the_task_changed_hook_once_each(make_orch) -> None:
    MemoryProcessorConnector.inboxes.clear()
    AlwaysDenied.allowed = False
    hook = TaskHook()
    orch = make_orch({"systems": {
        "desk": {"connector": "denied"},
        "carrier": {"connector": "memory-processor", "inbox": "c3"}}},
        plugins=(Plugin(), hook))
    seed(orch, "desk", {"u/1": ("user", {"email": "alice@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    orch.run()
    AlwaysDenied.allowed = True
    orch.retry(rid)
    # told when the command returns, not only by a later run
    assert [c for c in hook.changes if c[3] == "retry requested"] == [
        ("desk", "done", "acting", "retry requested")]
    orch.run()
    orch.confirm(rid, "carrier", "ok")
    orch.run()
    assert [c for c in hook.changes if c[3] in ("retry requested", "confirmed")] == [
        ("desk", "done", "acting", "retry requested"),
        ("carrier", "awaiting_confirmation", "done", "confirmed")]
    assert len(hook.event_ids) == len(set(hook.event_ids))  # each event delivered once
    assert bodies(orch, rid)["carrier"]["confirmation"] == "ok"


# the outbox ----------------------------------------------------------------------------

class FlakyHook:
    """Dies while handling the first event it gets; records every event id after that."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.die = True

    @hookimpl
    def erasure_request_finished(self, request_id, ticket, outcome, event_id) -> None:
        if self.die:
            self.die = False
            raise Crash()
        self.seen.append((request_id, event_id))


def test_a_hook_event_committed_before_a_crash_is_delivered_by_the_next_run(make_orch):
    hook = FlakyHook()
    orch = make_orch({"systems": {"crm": mem()}}, plugins=(hook,))
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    with pytest.raises(Crash):
        orch.run()
    assert orch.ledger.get_request(rid).status == "done"  # committed before the hook ran
    (pending,) = [e for e in orch.ledger.undelivered() if e[1] == "erasure_request_finished"]
    orch.run()  # nothing to run; the event is delivered
    assert hook.seen == [(rid, pending[0])]
    orch.run()
    assert hook.seen == [(rid, pending[0])], "an event was delivered twice after it succeeded"


# leases --------------------------------------------------------------------------------

def test_calls_longer_than_the_lease_give_one_receipt_per_request_and_system(make_orch):
    config = {"erasure": {"lease_seconds": 1, "batch_size": 5,
                          "retry": {"deadline_seconds": 0.5}},
              "systems": {"crm": mem(latency_ms=1500, store="slow")}}
    first, second = make_orch(config), make_orch(config)
    seed(first, "crm", {f"c/{i}": ("contact", {"email": f"p{i}@example.com"})
                        for i in range(5)})
    ids = first.submit_many([RequestSpec(RequestType.ERASURE, (("email", f"p{i}@example.com"),),
                                         verified=True) for i in range(5)])
    results: list[Any] = []
    a = threading.Thread(target=lambda: results.append(first.run()))
    a.start()
    import time

    time.sleep(1.3)  # past the lease: only the heartbeat keeps it
    b = second.run()
    a.join()
    assert b.finished == []  # the second runner found every lease held
    receipts = first.ledger.receipts()
    assert sorted(r["body"]["request"] for r in receipts) == sorted(ids)
    assert {r["body"]["outcome"] for r in receipts} == {"completed"}


def test_a_runner_that_lost_its_lease_writes_nothing(make_orch) -> None:
    orch = make_orch({"systems": {"crm": mem()}})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    runner = orch.runner()
    (row,) = orch.ledger.claim(10, 300, orch.clock())
    works = runner.load([row])
    with orch.ledger.tx() as conn:  # it expired and another runner took it
        conn.exec_driver_sql("UPDATE requests SET lease_owner = 'someone-else'")
    from erasure.engine.runner import RunSummary

    summary = RunSummary()
    assert runner.save(works, summary) == [] and summary.lost == [rid]
    runner.finish(works, summary)
    assert orch.ledger.receipts() == [] and summary.finished == []


def test_the_ledger_refuses_a_second_receipt_for_a_request_and_system(make_orch) -> None:
    orch = make_orch({"systems": {"crm": mem()}})
    rid = orch.submit(RequestSpec(RequestType.FIND, ALICE))
    orch.run()
    (r,) = orch.ledger.receipts(rid)
    with pytest.raises(sa.exc.IntegrityError), orch.ledger.tx() as conn:
        orch.ledger.add_receipts(conn, [{"seq": r["seq"] + 1, "request_id": rid,
                                         "system": "crm", "body": json.dumps(r["body"]),
                                         "hash": r["hash"], "signature": r["signature"]}])


def test_a_dead_lease_owner_is_told_apart_from_a_reused_pid() -> None:
    me = new_owner()
    assert owner_alive(me)
    child = subprocess.run([sys.executable, "-c",
                            "from erasure.leases import new_owner; print(new_owner())"],
                           capture_output=True, text=True, check=True)
    assert not owner_alive(child.stdout.strip()), "an exited process was taken as alive"
    host, ns, pid, started, tag = me.split(":")
    assert not owner_alive(f"{host}:{ns}:{pid}:{int(started) + 1}:{tag}"), "PID reuse"
    assert owner_alive(f"{host}:other-ns:{pid}:{started}:{tag}")  # cannot tell: the lease decides
    assert owner_alive(f"elsewhere:{ns}:{pid}:{started}:{tag}")


def test_a_zombie_lease_owner_is_dead() -> None:
    """A killed worker's pool process stays a zombie while nobody reaps it (for ever in a
    container whose first process reaps nothing): its leases are free at once."""
    child = subprocess.Popen([sys.executable, "-c",
                              "from erasure.leases import new_owner; print(new_owner())"],
                             stdout=subprocess.PIPE, text=True)
    try:
        owner = child.stdout.readline().strip() if child.stdout else ""
        end = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < end
            time.sleep(0.01)
        assert not owner_alive(owner), "a zombie (exited, not reaped) was taken as alive"
    finally:
        child.wait()


def test_a_lease_shorter_than_a_calls_deadline_is_refused(make_orch) -> None:
    from erasure import ConfigError

    with pytest.raises(ConfigError, match=r"lease_seconds \(60\) must be longer"):
        make_orch({"erasure": {"lease_seconds": 60, "retry": {"deadline_seconds": 120}},
                   "systems": {"crm": mem()}})


def test_a_confirmation_waits_for_a_run_that_holds_the_request(make_orch) -> None:
    from erasure import UsageError

    orch, _now = processor_world(make_orch)
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    orch.run()
    other = make_orch({"erasure": {}, "systems": {
        "crm": mem(), "carrier": {"connector": "memory-processor", "inbox": "carrier"}}},
        clock=orch.clock)
    assert other.ledger.claim(10, 300, orch.clock(), due_by=float("inf"))  # a run has it
    with pytest.raises(UsageError, match="being worked on by a run"):
        orch.confirm(rid, "carrier", "ref-1")
    assert stages(orch, rid)["carrier"] == "awaiting_confirmation"
    other.ledger.release([rid])
    orch.confirm(rid, "carrier", "ref-1")
    assert orch.ledger.get_request(rid).outcome == "completed"


class LegalHold(MemoryConnector):
    """Keeps the refs in ``HELD`` under a hold that may be lifted (as S3's legal hold)."""

    name = "memory-hold"
    HELD: set[str] = set()

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        held = [f for f in findings if f.ref in type(self).HELD]
        yield from (ItemOutcome(f, ItemStatus.RETAINED, error="legal hold until released",
                                held=True) for f in held)
        yield from super().delete([f for f in findings if f.ref not in type(self).HELD])


class HoldPlugin:
    @hookimpl
    def erasure_register_connectors(self, registry) -> None:
        registry.add(LegalHold)


def test_retry_has_items_kept_under_a_lifted_hold_checked_at_the_next_run(make_orch) -> None:
    # An operator who lifted a hold need not wait hold_recheck_hours: `erasure retry`
    # makes the held items due at the next run, which erases them.
    orch = make_orch({"systems": {"files": {"connector": "memory-hold"}, "crm": mem()}},
                     plugins=(HoldPlugin(),))
    seed(orch, "files", {"f/1": ("file", {"email": "alice@example.com"}),
                         "f/2": ("file", {"email": "alice@example.com"})})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    LegalHold.HELD = {"f/1"}
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    summary = orch.run()
    assert [(r, s) for r, s, _why in summary.held] == [(rid, "files")]
    assert count(orch, "files") == 1 and count(orch, "crm") == 0
    LegalHold.HELD = set()  # lifted
    orch.run()  # not due: the next check is a day away
    assert orch.ledger.get_request(rid).status == "open" and count(orch, "files") == 1
    with pytest.raises(UsageError, match="no blocked, failed or held task in crm"):
        orch.retry(rid, "crm")  # nothing of crm waits
    assert orch.retry(rid, "files") == ["files"]
    assert orch.run().outcome_of == {rid: "completed"}
    assert count(orch, "files") == 0
    assert bodies(orch, rid)["files"]["not_acted"] == []
