"""Rectification (Art. 16) and objection (Art. 21) through the command line, on memory
systems (file-backed, so the test reads what the CLI process changed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clihelpers import (
    describe,
    receipt_bodies,
    run_cli,
    seed,
    stored_items,
    write_config,
)

from erasure import IdentifierType, ItemOutcome, ItemStatus, RequestType, hookimpl
from erasure.orchestrator import RequestSpec
from erasure.testing.memory import MemoryConnector, MemorySettings

BOB = "bob@example.org"


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """Two systems: a CRM that knows Bob (email, phone, address) and Alice, who shares
    Bob's old household phone; a helpdesk with Bob's ticket under his email; a processor
    that can only be told (it can neither rectify nor object)."""
    crm, helpdesk = tmp_path / "crm.json", tmp_path / "helpdesk.json"
    seed(crm, {
        "contact/bob": ("contact", {"email": BOB, "phone": "+4930111111", "name": "Bob Baker",
                                    "address": "1 Old Road, Berlin"}),
        "lead/bob": ("lead", {"email": BOB, "note": "met at a fair"}),
        "contact/jimbob": ("contact", {"email": "jimbob@example.org",
                                       "phone": "+4930999999"}),
        "contact/alice": ("contact", {"email": "alice@example.org", "phone": "+4930222222"}),
    })
    seed(helpdesk, {
        "user/7": ("user", {"email": BOB, "phone": "+4930222222"}),
        "user/8": ("user", {"email": "alice@example.org", "phone": "+4930222222"}),
    })
    config = write_config(tmp_path, {
        "crm": {"connector": "memory", "path": str(crm)},
        "helpdesk": {"connector": "memory", "path": str(helpdesk),
                     "objection_scopes": ["marketing"]},
        "carrier": {"connector": "memory-processor", "inbox": "carrier"},
    })
    return {"config": config, "crm": crm, "helpdesk": helpdesk}


def _fields(path: Path) -> dict[str, dict[str, object]]:
    return {ref: item["fields"] for ref, item in stored_items(path).items()}


def test_rectified_email_changes_in_every_item_and_nothing_else(world):
    crm_before, desk_before = stored_items(world["crm"]), stored_items(world["helpdesk"])
    proc = run_cli("rectify", "--email", BOB, "--verified", "--set", "email=Robert@Example.org",
                   "--set", "address=2 New Street\n Berlin", config=world["config"])
    crm, desk = _fields(world["crm"]), _fields(world["helpdesk"])
    # Every item that held the old email holds the new one, normalised; nothing else moved.
    assert crm["contact/bob"] == {**crm_before["contact/bob"]["fields"],
                                  "email": "robert@example.org",
                                  "address": "2 New Street, Berlin"}
    assert crm["lead/bob"] == {"email": "robert@example.org", "note": "met at a fair"}
    assert desk["user/7"] == {"email": "robert@example.org", "phone": "+4930222222"}
    for path, before in ((world["crm"], crm_before), (world["helpdesk"], desk_before)):
        for ref, item in stored_items(path).items():
            if not ref.endswith(("/bob", "/7")):
                assert item == before[ref], f"{ref} changed"
    bodies = {b["system"]: b for b in receipt_bodies(world["config"])}
    assert bodies["crm"]["outcome"] == "completed", describe(proc)
    assert bodies["crm"]["corrections"] == ["address", "email"]
    assert bodies["crm"]["verification"] == {"performed": True, "ok": True}
    assert bodies["helpdesk"]["outcome"] == "completed"
    # The processor cannot rectify: said so, never skipped in silence.
    assert bodies["carrier"]["outcome"] == "not_covered"
    text = json.dumps(bodies)
    assert "robert@" not in text and BOB not in text and "New Street" not in text
    assert proc.returncode == 1, describe(proc)  # a system was not covered


def test_a_shared_phone_is_refused_for_review_and_changed_nowhere(world):
    before = {p: stored_items(world[p]) for p in ("crm", "helpdesk")}
    # Bob's helpdesk user carries the phone Alice also has; correcting it would touch
    # what Alice is known by.
    proc = run_cli("rectify", "--email", BOB, "--phone", "+4930222222", "--verified",
                   "--set", "phone=+4930333333", config=world["config"])
    assert {p: stored_items(world[p]) for p in ("crm", "helpdesk")} == before
    bodies = {b["system"]: b for b in receipt_bodies(world["config"])}
    for name in ("crm", "helpdesk"):
        assert bodies[name]["outcome"] == "partial", describe(proc)
        assert bodies[name]["corrections_refused"] == ["phone"]
        assert any("someone else: refused, for review" in e for e in bodies[name]["errors"])
    assert proc.returncode == 1


def test_a_correction_of_one_of_several_values_needs_the_old_one(world):
    before = {p: stored_items(world[p]) for p in ("crm", "helpdesk")}
    # Bob's items hold two phones; which one is wrong is his to say.
    proc = run_cli("rectify", "--email", BOB, "--verified", "--set", "phone=+4930333333",
                   config=world["config"])
    assert {p: stored_items(world[p]) for p in ("crm", "helpdesk")} == before
    bodies = {b["system"]: b for b in receipt_bodies(world["config"])}
    assert bodies["crm"]["corrections_refused"] == ["phone"], describe(proc)
    assert any("several values" in e for e in bodies["crm"]["errors"])
    # Naming it: the CRM contact's phone (nobody else's) is corrected, nothing else.
    fixed = run_cli("rectify", "--email", BOB, "--phone", "+4930111111", "--verified",
                    "--set", "phone=+4930333333", config=world["config"])
    assert fixed.returncode == 1, describe(fixed)  # the carrier cannot rectify
    assert _fields(world["crm"])["contact/bob"]["phone"] == "+4930333333"
    assert _fields(world["helpdesk"]) == {r: i["fields"] for r, i in before["helpdesk"].items()}


def test_a_bad_correction_exits_2_and_records_nothing(world):
    before = {p: stored_items(world[p]) for p in ("crm", "helpdesk")}
    for args, problem in (
        (["--set", "email=not-an-address"], "email: invalid email address"),
        (["--set", "phone=+49 30 CALL ME"], "phone: invalid phone number"),
        (["--set", "ssn=123"], "cannot correct 'ssn'"),
        (["--set", "email"], "--set takes TYPE=VALUE"),
        ([], "needs at least one correction"),
    ):
        proc = run_cli("rectify", "--email", BOB, "--verified", *args, config=world["config"])
        assert proc.returncode == 2, describe(proc)
        assert problem in proc.stderr, describe(proc)
        assert "not-an-address" not in proc.stderr or "email=" in " ".join(args)
    proc = run_cli("rectify", "--email", BOB, "--set", "email=new@example.org",
                   config=world["config"])
    assert proc.returncode == 2 and "refusing rectification" in proc.stderr, describe(proc)
    assert {p: stored_items(world[p]) for p in ("crm", "helpdesk")} == before
    assert not (world["config"].parent / "state" / "ledger.db").exists()


def test_an_objection_sets_the_opt_outs_and_deletes_nothing(world):
    before = {p: _fields(world[p]) for p in ("crm", "helpdesk")}
    proc = run_cli("object", "--email", BOB, config=world["config"])
    assert {p: _fields(world[p]) for p in ("crm", "helpdesk")} == before  # no data changed
    crm = MemoryConnector("crm", MemorySettings(path=str(world["crm"])))
    desk = MemoryConnector("helpdesk", MemorySettings(path=str(world["helpdesk"])))
    assert crm.opted_out("contact/bob") == crm.opted_out("lead/bob") == {"marketing"}
    assert desk.opted_out("user/7") == {"marketing"}
    assert crm.opted_out("contact/jimbob") == desk.opted_out("user/8") == set()
    bodies = {b["system"]: b for b in receipt_bodies(world["config"])}
    assert bodies["crm"]["objection_scope"] == "marketing"
    assert bodies["crm"]["outcome"] == bodies["helpdesk"]["outcome"] == "completed"
    assert bodies["carrier"]["outcome"] == "not_covered", describe(proc)


def test_an_objection_a_system_cannot_honour_is_not_covered_with_its_reason(world):
    proc = run_cli("request", "create", "--type", "objection", "--scope", "profiling",
                   "--email", BOB, config=world["config"])
    assert proc.returncode == 0, describe(proc)
    run_cli("run", config=world["config"])
    bodies = {b["system"]: b for b in receipt_bodies(world["config"])}
    assert bodies["crm"]["outcome"] == "completed"
    assert bodies["helpdesk"]["outcome"] == "not_covered"
    assert any("no opt-out for profiling" in e for e in bodies["helpdesk"]["errors"])
    crm = MemoryConnector("crm", MemorySettings(path=str(world["crm"])))
    desk = MemoryConnector("helpdesk", MemorySettings(path=str(world["helpdesk"])))
    assert crm.opted_out("contact/bob") == {"profiling"}
    assert desk.opted_out("user/7") == set()
    bad = run_cli("object", "--email", BOB, "--scope", "newsletters", config=world["config"])
    assert bad.returncode == 2 and "unknown objection scope" in bad.stderr, describe(bad)


class SaysDoneChangesNothing(MemoryConnector):
    """A rectify that answers DONE and leaves the old values in place."""

    name = "memory-says-done"

    def rectify(self, findings, corrections):
        return iter([ItemOutcome(f, ItemStatus.DONE) for f in findings])


class _Plugin:
    @hookimpl
    def erasure_register_connectors(self, registry):
        registry.add(SaysDoneChangesNothing)


def test_verification_catches_a_rectify_that_changed_nothing(make_orch):
    orch = make_orch({"systems": {"crm": {"connector": "memory-says-done",
                                          "store": "says-done"}}}, plugins=(_Plugin(),))
    orch.systems["crm"].connector().seed({"c/1": ("contact", {"email": BOB})})
    rid = orch.submit(RequestSpec(RequestType.RECTIFICATION, (("email", BOB),),
                                  verified=True, corrections=(("email", "new@example.org"),)))
    orch.run()
    (body,) = [r["body"] for r in orch.ledger.receipts(rid)]
    assert body["outcome"] == "partial"
    assert body["counts"]["residue"] == 1
    assert body["verification"] == {"performed": True, "ok": False}


class FindsByEmailOnly(MemoryConnector):
    """A system that can be searched by email only (its phone is a plain field to it)."""

    name = "memory-email-only"
    identifier_types = frozenset({IdentifierType.EMAIL})


class FindsByEmailOnlyChangesNothing(FindsByEmailOnly):
    name = "memory-email-only-lies"

    def rectify(self, findings, corrections):
        return iter([ItemOutcome(f, ItemStatus.DONE) for f in findings])


class _EmailOnlyPlugin:
    @hookimpl
    def erasure_register_connectors(self, registry):
        registry.add(FindsByEmailOnly)
        registry.add(FindsByEmailOnlyChangesNothing)


@pytest.mark.parametrize(("connector", "outcome"), [
    ("memory-email-only", "completed"), ("memory-email-only-lies", "partial")])
def test_a_type_the_system_cannot_search_is_verified_by_reading_back(make_orch, connector,
                                                                     outcome):
    orch = make_orch({"systems": {"crm": {"connector": connector, "store": connector}}},
                     plugins=(_EmailOnlyPlugin(),))
    orch.systems["crm"].connector().seed(
        {"c/1": ("contact", {"email": BOB, "phone": "+4930111111"})})
    rid = orch.submit(RequestSpec(RequestType.RECTIFICATION, (("email", BOB),),
                                  verified=True, corrections=(("phone", "+4930999999"),)))
    orch.run()
    (body,) = [r["body"] for r in orch.ledger.receipts(rid)]
    assert body["outcome"] == outcome
    assert body["verification"] == {"performed": True, "ok": outcome == "completed"}
