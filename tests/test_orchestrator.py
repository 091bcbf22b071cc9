"""End-to-end behaviour of the orchestrator over real (in-memory) connectors."""

from __future__ import annotations

import json
import re
import stat
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from erasure import (
    Finding,
    Identifier,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    PermanentError,
    RequestType,
    Subject,
    UsageError,
    hookimpl,
)
from erasure.engine.commands import RequestBusy
from erasure.ledger import add_months
from erasure.orchestrator import RequestSpec
from erasure.receipts import verify_chain
from erasure.testing import MemoryConnector

ALICE = (("email", "alice@example.com"),)
PHONE = "+4915112345678"


def seed(orch, system: str, items: dict) -> None:
    orch.systems[system].connector().seed(items)


def left(orch, system: str) -> int:
    return orch.systems[system].connector().count()


def erase(orch, identifiers=ALICE, **kw) -> tuple[str, dict[str, dict]]:
    rid = orch.submit(RequestSpec(RequestType.ERASURE, identifiers, verified=True, **kw))
    orch.run(only=[rid])
    return rid, {r["body"]["system"]: r["body"] for r in orch.ledger.receipts(rid)}


def mem(**extra) -> dict:
    return {"connector": "memory", **extra}


@pytest.fixture
def shop(make_orch):
    orch = make_orch({
        "systems": {"crm": mem(), "billing": mem(), "desk": mem()},
        "id_spaces": {"customer": {"type": "customer_id", "systems": ["crm", "billing"]}},
    })
    seed(orch, "crm", {
        "c/1": ("contact", {"email": "alice@example.com", "customer_id": "CUST-70731",
                            "phone": PHONE}),
        "c/2": ("contact", {"email": "jimalice@example.com", "customer_id": "CUST-70732"}),
        "c/3": ("contact", {"email": "bob@example.net", "phone": PHONE}),  # shares the phone
    })
    seed(orch, "billing", {
        "inv/1": ("invoice", {"customer_id": "CUST-70731"}),  # reachable only via expansion
        "inv/2": ("invoice", {"customer_id": "CUST-70732"}),
    })
    seed(orch, "desk", {
        "u/1": ("user", {"email": "alice@example.com"}),
        "u/3": ("user", {"email": "bob@example.net"}),  # reachable only through Bob's phone
    })
    return orch


def test_erasure_expands_identifiers_and_never_erases_someone_else(shop) -> None:
    rid, receipts = erase(shop)
    # Alice's contact, her invoice (found through the customer id on her contact) and her
    # helpdesk user are gone.
    assert left(shop, "crm") == 2 and left(shop, "billing") == 1 and left(shop, "desk") == 1
    crm = shop.systems["crm"].connector()
    alice = Subject("check", (Identifier(IdentifierType.EMAIL, "alice@example.com"),
                              Identifier(IdentifierType.CUSTOMER_ID, "CUST-70731")))
    assert list(crm.find([alice])) == []  # nothing of hers is left to find
    assert {f.ref for f in crm.find([Subject("n", (Identifier(
        IdentifierType.EMAIL, "jimalice@example.com"),))])} == {"c/2"}  # the lookalike is
    assert receipts["billing"]["counts"]["done"] == 1
    # Bob shares Alice's phone: his contact and, through his email, his helpdesk user are
    # found but only reported for review.
    assert receipts["crm"]["counts"]["review"] == 1
    assert receipts["desk"]["counts"]["review"] == 1
    # Nobody decided on them (`erasure review`): those systems are partial, with why.
    assert receipts["billing"]["outcome"] == "completed"
    for name in ("crm", "desk"):
        assert receipts[name]["outcome"] == "partial"
        assert receipts[name]["not_acted"] == ["1 review items undecided"]
    assert shop.ledger.get_request(rid).outcome == "partial"


def test_weak_identifiers_alone_never_erase(shop) -> None:
    _, receipts = erase(shop, identifiers=(("phone", PHONE),))
    assert left(shop, "crm") == 3 and left(shop, "desk") == 2
    assert receipts["crm"]["counts"]["actionable"] == 0
    assert receipts["crm"]["counts"]["review"] == 2


SECRETS = ("alice@example.com", "CUST-70731", PHONE, "c/1", "inv/1", "u/1")


def test_receipts_hold_no_personal_data_and_the_ledger_is_purged(shop, tmp_path: Path) -> None:
    rid = shop.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True, ticket="T-9"))
    # While the request is open its identifiers are in the ledger, encrypted: this is the
    # data the purge below must remove, and the key that would read it.
    opened = json.loads(shop.ciphers.decrypt(rid, shop.ledger.get_request(rid).identifiers))
    assert ["email", "alice@example.com", None, True, True] in opened["ids"]
    shop.run(only=[rid])
    receipts = {r["body"]["system"]: r["body"] for r in shop.ledger.receipts(rid)}
    text = json.dumps(shop.ledger.receipts())
    for secret in SECRETS:
        # bounded by characters base64 never writes, so a signature or hash that happens
        # to contain "c/1" is not taken for the item id (a false alarm seen 1 in ~2,600)
        assert not re.search(rf"(?<![A-Za-z0-9+/=_-]){re.escape(secret)}(?![A-Za-z0-9+/=_-])",
                             text), secret
    row = shop.ledger.get_request(rid)
    assert row.identifiers is None and row.status == "done"
    tasks = shop.ledger.tasks_for([rid])
    assert tasks and all(t.state is None for t in tasks)
    for t in tasks:  # the clear-text columns: counts and classified errors only
        assert not any(secret in (t.summary or "") for secret in SECRETS), t.summary
    shop.ledger.engine.dispose()  # checkpoint the WAL so every byte is in files we read
    for f in (tmp_path / "state").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(secret.encode() in data for secret in SECRETS[:3]), f
    assert receipts["crm"]["ticket"] == "T-9"


def test_receipts_verify_and_tampering_is_detected(shop) -> None:
    erase(shop)
    erase(shop, identifiers=(("email", "jimalice@example.com"),))
    all_receipts = shop.ledger.receipts()
    key = shop.keys.signing.public_key()
    assert verify_chain(all_receipts, key).ok
    edited = json.loads(json.dumps(all_receipts))
    edited[1]["body"]["outcome"] = "completed" if edited[1]["body"]["outcome"] != "completed" \
        else "failed"
    assert not verify_chain(edited, key).ok
    assert not verify_chain(all_receipts[:2] + all_receipts[3:], key).ok  # one removed
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    report = verify_chain(all_receipts, Ed25519PrivateKey.generate().public_key())
    assert not report.ok and "signature" in report.problems[0]


class LyingConnector(MemoryConnector):
    """Says it deleted, deletes nothing: the host must catch this as residue."""

    name = "liar"

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter([ItemOutcome(f, ItemStatus.DONE) for f in findings])


class BrokenConnector(MemoryConnector):
    name = "broken"

    def delete(self, findings):
        raise PermanentError("delete not permitted for this API user")


class FlakyItemsConnector(MemoryConnector):
    """Fails half the items transiently on the first delete call (as per-item APIs do)."""

    name = "flaky"
    calls = 0

    def delete(self, findings):
        type(self).calls += 1
        if type(self).calls == 1:
            out = [ItemOutcome(f, ItemStatus.FAILED, error="busy", transient=True)
                   for f in findings[::2]]
            rest = list(super().delete(findings[1::2]))
            return iter(out + rest)
        return super().delete(findings)


class TestPlugin:
    finished: list[tuple[str, str | None, str]] = []

    @hookimpl
    def erasure_register_connectors(self, registry) -> None:
        for c in (LyingConnector, BrokenConnector, FlakyItemsConnector):
            registry.add(c)

    @hookimpl
    def erasure_request_finished(self, request_id, ticket, outcome) -> None:
        self.finished.append((request_id, ticket, outcome))


def test_residue_is_reported_never_success(make_orch) -> None:
    orch = make_orch({"systems": {"crm": {"connector": "liar"}}}, plugins=(TestPlugin(),))
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    rid, receipts = erase(orch)
    assert receipts["crm"]["outcome"] == "partial"
    assert receipts["crm"]["counts"]["residue"] == 1
    assert receipts["crm"]["verification"] == {"performed": True, "ok": False}
    assert orch.ledger.get_request(rid).outcome == "partial"


def test_permanent_failure_fails_one_system_and_the_others_finish(make_orch) -> None:
    plugin = TestPlugin()
    orch = make_orch({"systems": {"crm": mem(), "desk": {"connector": "broken"}}},
                     plugins=(plugin,))
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    seed(orch, "desk", {"u/1": ("user", {"email": "alice@example.com"})})
    rid, receipts = erase(orch, ticket="T-1")
    assert receipts["crm"]["outcome"] == "completed" and left(orch, "crm") == 0
    assert receipts["desk"]["outcome"] == "failed"
    assert receipts["desk"]["errors"] == ["PermanentError: delete not permitted for this API user"]
    assert receipts["desk"]["attempts"]["delete"] == 1  # permanent: not retried
    assert (rid, "T-1", "failed") in plugin.finished


def test_transient_errors_are_retried_honouring_retry_after(make_orch, sleeps) -> None:
    orch = make_orch({"systems": {"crm": mem(fail_first_calls=2, fail_retry_after=7.5)}})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    _, receipts = erase(orch)
    assert receipts["crm"]["outcome"] == "completed"
    assert receipts["crm"]["attempts"]["find"] == 3
    assert sleeps[:2] == [7.5, 7.5]


def test_an_outage_longer_than_the_retry_budget_waits_for_a_later_run(make_orch, sleeps):
    now = [1_000_000.0]
    orch = make_orch({
        "erasure": {"retry": {"max_attempts": 3, "initial_wait": 0.1, "defer_initial": 60}},
        "systems": {"crm": mem(fail_first_calls=4), "desk": mem()},
    }, clock=lambda: now[0])
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    seed(orch, "desk", {"u/1": ("user", {"email": "alice@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    summary = orch.run()
    # three attempts, then the task waits; nothing is acted on before the search is whole
    assert summary.finished == [] and summary.waiting == {"pending": 1, "found": 1}
    assert len(sleeps) == 2 and all(0 < s <= 60 for s in sleeps)
    row = orch.ledger.get_request(rid)
    assert row.status == "open" and row.identifiers is not None
    assert 48 <= row.not_before - now[0] <= 72 and left(orch, "desk") == 1
    assert orch.run().finished == []  # not due yet: a run does nothing
    now[0] += 75
    assert orch.run().finished == [rid]
    receipts = {r["body"]["system"]: r["body"] for r in orch.ledger.receipts(rid)}
    assert {b["outcome"] for b in receipts.values()} == {"completed"}
    assert left(orch, "crm") == 0 and left(orch, "desk") == 0
    assert receipts["crm"]["deferrals"] == 1 and receipts["crm"]["attempts"]["find"] == 5
    causes = [(e["system"], e["old"], e["new"], e["cause"])
              for e in orch.ledger.task_events(rid)]
    assert ("crm", "pending", "pending",
            "find deferred: TransientError: simulated outage (retries exhausted)") in causes


def test_near_the_due_date_a_failing_system_fails_for_good(make_orch) -> None:
    orch = make_orch({"erasure": {"retry": {"max_attempts": 2, "initial_wait": 0}},
                      "systems": {"crm": mem(fail_first_calls=100), "desk": mem()}})
    seed(orch, "desk", {"u/1": ("user", {"email": "alice@example.com"})})
    from datetime import timedelta

    from erasure.ledger import utcnow

    received = utcnow() - timedelta(days=30)  # due in a day or so: less than 48 hours left
    rid, receipts = erase(orch, received_at=received)
    assert receipts["crm"]["outcome"] == "failed"
    assert "due date is near" in receipts["crm"]["errors"][-1]
    assert receipts["desk"]["outcome"] == "completed" and left(orch, "desk") == 0
    assert orch.ledger.get_request(rid).outcome == "failed"


def test_items_that_fail_transiently_are_retried_alone(make_orch) -> None:
    orch = make_orch({"systems": {"crm": {"connector": "flaky"}}}, plugins=(TestPlugin(),))
    FlakyItemsConnector.calls = 0
    seed(orch, "crm", {f"c/{i}": ("contact", {"email": "alice@example.com"}) for i in range(6)})
    _, receipts = erase(orch)
    assert left(orch, "crm") == 0
    assert receipts["crm"]["outcome"] == "completed"
    assert receipts["crm"]["attempts"]["delete"] == 2
    assert receipts["crm"]["counts"]["done"] == 6


def test_retained_system_keeps_data_and_says_why(make_orch) -> None:
    orch = make_orch({"systems": {"tax": mem(policy="retain", reason="tax law: 10 years")}})
    seed(orch, "tax", {"inv/1": ("invoice", {"email": "alice@example.com"})})
    _, receipts = erase(orch)
    assert left(orch, "tax") == 1
    assert receipts["tax"]["outcome"] == "retained"
    assert receipts["tax"]["policy_reason"] == "tax law: 10 years"


def test_anonymise_policy(make_orch) -> None:
    orch = make_orch({"systems": {"crm": mem(policy="anonymise")}})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com", "plan": "gold"})})
    _, receipts = erase(orch)
    assert left(orch, "crm") == 1 and receipts["crm"]["outcome"] == "completed"
    rec = list(orch.systems["crm"].connector().export(
        [Finding("crm", "x", "c/1", "contact", ())]))
    assert rec[0].data == {"plan": "gold"}


def test_access_package(shop) -> None:
    rid = shop.submit(RequestSpec(RequestType.ACCESS, ALICE, verified=True))
    summary = shop.run(only=[rid])
    # Bob's contact and user, found through the phone, were left out, undecided
    assert summary.outcomes == {"partial": 1}
    path = shop.config.host.exports() / f"{rid}.zip"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"crm.json", "billing.json", "desk.json", "index.html",
                "crm/contact.csv", "billing/invoice.csv"} <= names
        crm = json.loads(zf.read("crm.json"))
        html = zf.read("index.html").decode()
    emails = {r.get("email") for r in crm["records"]["contact"]}
    assert emails == {"alice@example.com"}  # not Bob's, though he shares her phone
    assert "bob@example.net" not in html and "alice@example.com" in html
    assert left(shop, "crm") == 3  # access changes nothing


def test_restriction(shop) -> None:
    rid = shop.submit(RequestSpec(RequestType.RESTRICTION, ALICE, verified=True))
    shop.run(only=[rid])
    crm = shop.systems["crm"].connector()
    assert crm.is_restricted("c/1") and not crm.is_restricted("c/3")
    assert left(shop, "crm") == 3


def test_approval_gate(make_orch) -> None:
    orch = make_orch({"erasure": {"require_approval": True}, "systems": {"crm": mem()}})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    summary = orch.run()
    assert summary.awaiting_approval == [rid] and left(orch, "crm") == 1
    assert orch.run().finished == []  # still waiting
    orch.approve(rid)
    assert orch.run().finished == [rid] and left(orch, "crm") == 0
    with pytest.raises(UsageError, match="not awaiting approval"):
        orch.approve(rid)


def test_a_cancel_refused_while_a_run_holds_the_request_leaves_its_plan_unapproved(
        make_orch) -> None:
    orch = make_orch({"erasure": {"require_approval": True}, "systems": {"crm": mem()}})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    assert orch.run().awaiting_approval == [rid]
    # another process's run holds it (serve's runner finishing the batch that stopped it at
    # the gate, say) all through the cancel's wait
    assert orch.ledger.claim(1, 60, orch.clock(), only=[rid], due_by=float("inf"),
                             awaiting_approval=True)
    with pytest.raises(RequestBusy, match="being worked on by a run"):
        orch.cancel(rid, wait_seconds=0.3)
    row = orch.get_request(rid)
    assert (row.status, row.approved_at) == ("awaiting_approval", None)  # not let through
    orch.ledger.release([rid])
    orch.run()  # nothing acts: it still waits for a person's approval
    assert left(orch, "crm") == 1 and orch.get_request(rid).status == "awaiting_approval"


def test_a_cancel_waits_for_the_run_holding_the_request(make_orch) -> None:
    import threading

    orch = make_orch({"erasure": {"require_approval": True}, "systems": {"crm": mem()}})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    orch.run()
    assert orch.ledger.claim(1, 60, orch.clock(), only=[rid], due_by=float("inf"),
                             awaiting_approval=True)
    threading.Timer(0.3, orch.ledger.release, [[rid]]).start()  # the batch ends
    assert orch.cancel(rid, wait_seconds=10) == "failed"
    assert left(orch, "crm") == 1  # withdrawn, nothing erased
    (receipt,) = orch.ledger.receipts(rid)
    assert receipt["body"]["outcome"] == "failed"


def test_unverified_erasure_is_refused_unless_overridden(make_orch) -> None:
    orch = make_orch({"systems": {"crm": mem()}})
    with pytest.raises(UsageError, match="not marked verified"):
        orch.submit(RequestSpec(RequestType.ERASURE, ALICE))
    assert orch.ledger.count_requests() == 0
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, override_unverified="court order"))
    orch.run()
    body = orch.ledger.receipts(rid)[0]["body"]
    assert body["unverified_override"] == orch.keys.digest(
        "reason", "unverified-override", rid, "court order")
    assert body["subject_verified"] is False


def test_a_batch_with_one_bad_identifier_records_nothing(make_orch) -> None:
    orch = make_orch({"systems": {"crm": mem()}})
    specs = [RequestSpec(RequestType.FIND, ALICE), RequestSpec(RequestType.FIND,
                                                               (("email", "nope"),))]
    with pytest.raises(UsageError):
        orch.submit_many(specs)
    assert orch.ledger.count_requests() == 0


def test_dry_run_plan_changes_nothing(shop) -> None:
    lines = {ln.system: ln for ln in shop.plan(RequestSpec(RequestType.ERASURE, ALICE))}
    assert lines["billing"].actionable == 1 and lines["crm"].review == 1
    assert lines["crm"].action == "delete"
    assert left(shop, "crm") == 3 and shop.ledger.count_requests() == 0


def test_missing_connector_blocks_its_system_until_it_is_back(make_orch) -> None:
    # As for a plugin that failed to load or is blocked: the config accepts the system;
    # its task waits for an operator (never ended not_covered), the request stays open with
    # its identifiers and acts nowhere meanwhile (the plan is not whole).
    orch = make_orch({"systems": {"crm": mem(), "desk": {"connector": "gone"}}},
                     uncovered=frozenset({"gone"}))
    assert orch.systems["desk"].uncovered
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    rid, receipts = erase(orch)
    assert receipts == {}
    row = orch.ledger.get_request(rid)
    assert row.status == "open" and row.identifiers is not None
    assert left(orch, "crm") == 1
    (blocked,) = [t for t in orch.ledger.tasks_for([rid]) if t.system == "desk"]
    assert "no installed plugin provides connector 'gone'" in blocked.summary, blocked


def test_deadlines() -> None:
    from datetime import datetime

    assert add_months(datetime(2026, 1, 31), 1) == datetime(2026, 2, 28)
    assert add_months(datetime(2024, 1, 31), 1) == datetime(2024, 2, 29)
    assert add_months(datetime(2026, 12, 15), 1) == datetime(2027, 1, 15)
    assert add_months(datetime(2026, 11, 30), 3) == datetime(2027, 2, 28)


def test_extension_is_recorded_once(make_orch) -> None:
    from datetime import datetime

    orch = make_orch({"systems": {"crm": mem()}})
    rid = orch.submit(RequestSpec(RequestType.ACCESS, ALICE, verified=True,
                                  received_at=datetime(2026, 1, 31, 9, 0)))
    assert orch.ledger.get_request(rid).due_at == datetime(2026, 2, 28, 9, 0)
    assert orch.extend(rid, 2, "many systems") == datetime(2026, 4, 30, 9, 0)
    with pytest.raises(UsageError, match="already extended"):
        orch.extend(rid, 1, "again")
