"""Findings of the safety review, as tests: ids from another id space, packages after a crash,
calls that never mix actions, expansion that never depends on answer order."""

from __future__ import annotations

import json
import random
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from erasure import (
    ConfigError,
    Finding,
    ItemOutcome,
    Record,
    RequestType,
    Subject,
    UsageError,
    hookimpl,
)
from erasure.orchestrator import RequestSpec
from erasure.testing import MemoryConnector

ALICE = (("email", "alice@example.com"),)


def mem(**extra: Any) -> dict[str, Any]:
    return {"connector": "memory", **extra}


def seed(orch, system: str, items: dict) -> None:
    orch.systems[system].connector().seed(items)


def refs(orch, system: str) -> set[str]:
    return {ref for ref in orch.systems[system].connector()._store.items}


def receipts(orch, rid: str) -> dict[str, dict[str, Any]]:
    return {r["body"]["system"]: r["body"] for r in orch.ledger.receipts(rid)}


# id spaces -------------------------------------------------------------------------------

def helpdesk_and_billing(make_orch, id_spaces: dict[str, Any]):
    orch = make_orch({"systems": {"helpdesk": mem(), "billing": mem()}, "id_spaces": id_spaces})
    # Alice's helpdesk user is number 123 in the helpdesk's numbering ...
    seed(orch, "helpdesk", {"u/123": ("user", {"email": "alice@example.com",
                                               "customer_id": "123"})})
    # ... and billing account 123 is Bob's.
    seed(orch, "billing", {"acct/123": ("account", {"customer_id": "123",
                                                    "email": "bob@example.net"})})
    return orch


def test_an_id_seen_in_one_system_never_erases_its_namesake_in_another(make_orch) -> None:
    orch = helpdesk_and_billing(make_orch, {})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    orch.run()
    assert refs(orch, "billing") == {"acct/123"}, "Bob's account was erased through Alice's id"
    assert refs(orch, "helpdesk") == set()
    got = receipts(orch, rid)
    assert got["billing"]["counts"]["found"] == 0 and got["billing"]["outcome"] == "completed"
    assert got["helpdesk"]["id_spaces"] == ["system:helpdesk"]


def test_a_declared_id_space_carries_ids_between_its_systems(make_orch) -> None:
    orch = helpdesk_and_billing(make_orch, {
        "customer": {"type": "customer_id", "systems": ["helpdesk", "billing"]}})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    orch.run()
    assert refs(orch, "billing") == set()  # same space: the same customer
    assert receipts(orch, rid)["billing"]["id_spaces"] == ["customer"]


def test_a_request_id_is_searched_only_in_its_space(make_orch) -> None:
    orch = make_orch({
        "systems": {"crm": mem(), "billing": mem(), "desk": mem()},
        "id_spaces": {
            "customer": {"type": "customer_id", "systems": ["crm", "billing"], "default": True},
            "desk": {"type": "customer_id", "systems": ["desk"]},
        }})
    for system in ("crm", "billing", "desk"):
        seed(orch, system, {f"{system}/1": ("item", {"customer_id": "C-7"})})
    orch.run(only=[orch.submit(RequestSpec(RequestType.ERASURE, (("customer_id", "C-7"),),
                                           verified=True))])
    assert (refs(orch, "crm"), refs(orch, "billing"), refs(orch, "desk")) == (set(), set(),
                                                                              {"desk/1"})
    orch.run(only=[orch.submit(RequestSpec(RequestType.ERASURE, (("customer_id", "C-7", "desk"),),
                                           verified=True))])
    assert refs(orch, "desk") == set()


@pytest.mark.parametrize(("spaces", "ident", "needle"), [
    ({}, ("customer_id", "C-1"), "no id space declares"),
    ({"a": {"type": "customer_id", "systems": ["crm"]},
      "b": {"type": "customer_id", "systems": ["desk"]}}, ("customer_id", "C-1"), "name one"),
    ({"a": {"type": "customer_id", "systems": ["crm"]}}, ("customer_id", "C-1", "zz"),
     "unknown id space 'zz'"),
    ({"a": {"type": "user_id", "systems": ["crm"]}}, ("customer_id", "C-1", "a"),
     "holds user_id"),
    ({}, ("email", "a@example.com", "a"), "no id space"),
])
def test_bad_id_space_on_a_request_is_one_clear_error(make_orch, spaces, ident, needle) -> None:
    orch = make_orch({"systems": {"crm": mem(), "desk": mem()}, "id_spaces": spaces})
    with pytest.raises(UsageError, match=needle):
        orch.submit(RequestSpec(RequestType.ERASURE, (ident,), verified=True))
    assert orch.ledger.count_requests() == 0


@pytest.mark.parametrize(("spaces", "needle"), [
    ({"x": {"type": "email", "systems": ["crm"]}}, "email is global"),
    ({"x": {"type": "customer_id", "systems": ["nope"]}}, "no system 'nope'"),
    ({"x": {"type": "customer_id", "systems": ["crm"]},
      "y": {"type": "customer_id", "systems": ["crm"]}}, "already in id space 'x'"),
    ({"x": {"type": "customer_id", "systems": ["crm"], "default": True},
      "y": {"type": "customer_id", "systems": ["desk"], "default": True}}, "already the default"),
    ({"x": {"type": "customer_id", "systems": []}}, "id_spaces.x.systems"),
    ({"x": {"type": "customer_id", "systems": ["crm"], "colour": 1}}, "id_spaces.x.colour"),
])
def test_bad_id_space_config_names_the_problem(make_orch, spaces, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        make_orch({"systems": {"crm": mem(), "desk": mem()}, "id_spaces": spaces})


# packages after a crash ------------------------------------------------------------------

class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


class CrashOnVerify(MemoryConnector):
    """Dies once, on the first find after the first delete: after the act step, before
    finish (a resumed run repeats the delete and goes on)."""

    name = "crash-on-verify"
    armed = False
    fired = False

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        type(self).armed = not type(self).fired
        return super().delete(findings)

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        if type(self).armed:
            type(self).armed, type(self).fired = False, True
            raise Crash()
        return super().find(subjects)


class Plugin:
    @hookimpl
    def erasure_register_connectors(self, registry) -> None:
        registry.add(CrashOnVerify)
        registry.add(ActionLog)


def test_a_resumed_run_writes_the_package_the_first_run_would_have(make_orch) -> None:
    CrashOnVerify.armed = CrashOnVerify.fired = False
    config = {"systems": {"crm": mem(), "desk": {"connector": "crash-on-verify"}}}
    orch = make_orch(config, plugins=(Plugin(),))
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com", "city": "Berlin"})})
    seed(orch, "desk", {"u/1": ("user", {"email": "alice@example.com", "plan": "gold"}),
                        "u/2": ("user", {"email": "bob@example.com"})})
    # The access request shares its batch with an erasure whose verify step crashes, after
    # the export records were saved and before the package was written.
    access = orch.submit(RequestSpec(RequestType.ACCESS, ALICE, verified=True))
    orch.submit(RequestSpec(RequestType.ERASURE, (("email", "bob@example.com"),), verified=True))
    with pytest.raises(Crash):
        orch.run()
    assert orch.ledger.get_request(access).status == "open"
    with orch.ledger.tx() as conn:  # the dead run's leases expire
        conn.exec_driver_sql("UPDATE requests SET lease_owner = NULL, lease_until = NULL")
    resumed = make_orch(config, plugins=(Plugin(),))
    assert resumed.run().ok
    with zipfile.ZipFile(resumed.config.host.exports() / f"{access}.zip") as zf:
        crm = json.loads(zf.read("crm.json"))["records"]
        desk = json.loads(zf.read("desk.json"))["records"]
        html = zf.read("index.html").decode()
    assert crm == {"contact": [{"email": "alice@example.com", "city": "Berlin"}]}
    assert desk == {"user": [{"email": "alice@example.com", "plan": "gold"}]}
    assert "No personal data" not in html
    assert receipts(resumed, access)["desk"]["counts"]["exported"] == 1


# one call, one action --------------------------------------------------------------------

class ActionLog(MemoryConnector):
    """Records which requests each call carried, per action."""

    name = "action-log"
    calls: list[tuple[str, frozenset[str]]] = []

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        self.calls.append(("export", frozenset(f.subject for f in findings)))
        return super().export(findings)

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        self.calls.append(("delete", frozenset(f.subject for f in findings)))
        return super().delete(findings)

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        self.calls.append(("restrict", frozenset(f.subject for f in findings)))
        return super().restrict(findings)


def test_a_call_never_carries_two_actions(make_orch) -> None:
    ActionLog.calls = []
    orch = make_orch({"systems": {"crm": {"connector": "action-log"}}}, plugins=(Plugin(),))
    people = [f"p{i}@example.com" for i in range(12)]
    seed(orch, "crm", {f"c/{i}": ("contact", {"email": e}) for i, e in enumerate(people)})
    kinds = [RequestType.ACCESS, RequestType.ERASURE, RequestType.RESTRICTION,
             RequestType.PORTABILITY, RequestType.FIND, RequestType.ERASURE] * 2
    ids = orch.submit_many([RequestSpec(t, (("email", e),), verified=True)
                            for t, e in zip(kinds, people, strict=True)])
    orch.run()
    kind_of = dict(zip(ids, kinds, strict=True))
    expected = {RequestType.ACCESS: "export", RequestType.PORTABILITY: "export",
                RequestType.ERASURE: "delete", RequestType.RESTRICTION: "restrict"}
    assert ActionLog.calls
    for action, subjects in ActionLog.calls:
        assert {expected[kind_of[s]] for s in subjects} == {action}
    assert refs(orch, "crm") == {f"c/{i}" for i, k in enumerate(kinds)
                                 if k is not RequestType.ERASURE}


# expansion -------------------------------------------------------------------------------

def test_the_plan_does_not_depend_on_the_order_systems_answer_in(make_orch) -> None:
    # Round 0: Alice's email finds her contact (customer id C-1, strong) and her phone a
    # helpdesk user with user id U-1 (weak: the phone is shared). Round 1: billing finds an
    # invoice with C-1 and U-1 (so U-1 is strong), and the helpdesk a user with U-1 that
    # shows customer id C-2. Whether C-2 is strong must not depend on whether billing or
    # the helpdesk answered first in round 1; it is, so round 2's invoice of C-2 is hers.
    base = {
        "crm": {"c/1": ("contact", {"email": "alice@example.com", "customer_id": "C-1"})},
        "desk": {"u/1": ("user", {"phone": "+4930123456", "user_id": "U-1"}),
                 "u/2": ("user", {"user_id": "U-1", "customer_id": "C-2"})},
        "billing": {"inv/1": ("invoice", {"customer_id": "C-1", "user_id": "U-1"}),
                    "inv/2": ("invoice", {"customer_id": "C-2"})},
    }
    spaces = {"customer": {"type": "customer_id", "systems": ["crm", "desk", "billing"]},
              "users": {"type": "user_id", "systems": ["desk", "billing"]}}
    request = RequestSpec(RequestType.ERASURE, (*ALICE, ("phone", "+4930123456")),
                          verified=True)
    plans = set()
    for n, order in enumerate([["crm", "desk", "billing"], ["crm", "billing", "desk"],
                               ["billing", "desk", "crm"], ["desk", "crm", "billing"]]):
        orch = make_orch({"systems": {s: mem(store=f"{s}-{n}") for s in order},
                          "id_spaces": spaces})
        for s in order:
            items = list(base[s].items())
            random.Random(n).shuffle(items)
            seed(orch, s, dict(items))
        plans.add(tuple(sorted((ln.system, ln.found, ln.actionable)
                               for ln in orch.plan(request))))
    assert plans == {(("billing", 2, 2), ("crm", 1, 1), ("desk", 2, 2))}


# approval --------------------------------------------------------------------------------

def test_a_world_changed_after_approval_stops_for_approval_again(make_orch) -> None:
    orch = make_orch({"erasure": {"require_approval": True}, "systems": {"crm": mem()}})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    assert orch.run().awaiting_approval == [rid]
    orch.approve(rid)
    # Between approval and run, a second contact of hers appears: not what was approved.
    seed(orch, "crm", {"c/2": ("contact", {"email": "alice@example.com"})})
    summary = orch.run()
    assert summary.awaiting_approval == [rid] and summary.replanned == [rid]
    assert summary.finished == [] and refs(orch, "crm") == {"c/1", "c/2"}
    assert orch.ledger.get_request(rid).status == "awaiting_approval"
    orch.approve(rid)  # the new plan, approved as it stands, is carried out
    assert orch.run().finished == [rid]
    assert refs(orch, "crm") == set()
    assert receipts(orch, rid)["crm"]["counts"]["done"] == 2


def test_an_unchanged_world_acts_on_the_approved_plan(make_orch) -> None:
    orch = make_orch({"erasure": {"require_approval": True}, "systems": {"crm": mem()}})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com"}),
                       "c/9": ("contact", {"email": "bob@example.com"})})
    rid = orch.submit(RequestSpec(RequestType.ERASURE, ALICE, verified=True))
    orch.run()
    orch.approve(rid)
    summary = orch.run()
    assert summary.finished == [rid] and summary.replanned == []
    assert refs(orch, "crm") == {"c/9"}


def test_access_and_erasure_of_one_person_in_one_batch_export_first(make_orch) -> None:
    orch = make_orch({"systems": {"crm": mem()}})
    seed(orch, "crm", {"c/1": ("contact", {"email": "alice@example.com", "city": "Oslo"})})
    erase_id, access_id = orch.submit_many([
        RequestSpec(RequestType.ERASURE, ALICE, verified=True),
        RequestSpec(RequestType.ACCESS, ALICE, verified=True)])
    orch.run()
    assert refs(orch, "crm") == set()
    assert receipts(orch, erase_id)["crm"]["outcome"] == "completed"
    got = receipts(orch, access_id)["crm"]
    assert (got["outcome"], got["counts"]["exported"]) == ("completed", 1)
    with zipfile.ZipFile(orch.config.host.exports() / f"{access_id}.zip") as zf:
        assert json.loads(zf.read("crm.json"))["records"]["contact"][0]["city"] == "Oslo"
