"""Findings that went stale (issue 13, "find again"): a system renumbered its items between
find and act (an IMAP folder rebuilt with a new UIDVALIDITY). The old references may name
other people's items now: nothing is done through them, the system is searched again and
the subject's items are erased under their new references; the neighbour survives."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from erasure import (
    Finding,
    Identifier,
    ItemOutcome,
    ItemStatus,
    RequestType,
    Subject,
    hookimpl,
)
from erasure.orchestrator import RequestSpec
from erasure.testing import MemoryConnector


class Renumbering(MemoryConnector):
    """Refs carry the store's generation (as IMAP refs carry UIDVALIDITY). Before its first
    ``renumber`` deletes, the store is rebuilt: the items swap places, so an old ref names
    the other person's item, and the generation moves on."""

    name = "renumbering"
    generation = 0
    renumber = 1

    def _wrap(self, f: Finding) -> Finding:
        return dataclasses.replace(f, ref=f"g{type(self).generation}|{f.ref}")

    def find(self, subjects):
        return (self._wrap(f) for f in super().find(subjects))

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        cls = type(self)
        if cls.renumber:
            cls.renumber -= 1
            with self._open(write=True) as store:
                a, b = (store.items[r] for r in ("c/1", "c/2"))
                store.remove("c/1")
                store.remove("c/2")
                store.add("c/1", b["kind"], b["fields"])
                store.add("c/2", a["kind"], a["fields"])
            cls.generation += 1
        now = f"g{cls.generation}|"
        out = [ItemOutcome(f, ItemStatus.STALE, error="renumbered since find")
               for f in findings if not f.ref.startswith(now)]
        fresh = {f.ref.split("|", 1)[1]: f for f in findings if f.ref.startswith(now)}
        inner = [dataclasses.replace(f, ref=r) for r, f in fresh.items()]
        out += [dataclasses.replace(o, finding=fresh[o.finding.ref])
                for o in super().delete(inner)]
        return iter(out)


class Plugin:
    @hookimpl
    def erasure_register_connectors(self, registry) -> None:
        registry.add(Renumbering)


def test_stale_findings_are_found_again_and_never_acted_on(make_orch) -> None:
    Renumbering.generation, Renumbering.renumber = 0, 1
    orch = make_orch({"systems": {"archive": {"connector": "renumbering"}}},
                     plugins=(Plugin(),))
    orch.systems["archive"].connector().seed({
        "c/1": ("message", {"email": "alice@example.com", "subject": "alice's"}),
        "c/2": ("message", {"email": "carol@example.com", "subject": "carol's"}),
    })
    rid = orch.submit(RequestSpec(RequestType.ERASURE, (("email", "alice@example.com"),),
                                  verified=True))
    first = orch.run()
    assert rid not in first.finished  # the stale finding sent the system back to find
    (task,) = orch.ledger.tasks_for([rid])
    assert task.stage == "pending"
    events = [(e["old"], e["new"], e["cause"]) for e in orch.ledger.task_events(rid)]
    assert ("acting", "pending", "findings stale: find again") in events
    second = orch.run()
    assert rid in second.finished
    body = orch.ledger.receipts(rid)[0]["body"]
    assert body["outcome"] == "completed", body
    conn = orch.systems["archive"].connector()
    assert conn.count() == 1  # Carol's message, now at c/1, is still there
    carol = Subject("x", (Identifier.parse("email", "carol@example.com"),))
    assert len(list(conn.find([carol]))) == 1


def test_a_system_that_keeps_renumbering_fails_the_task_after_a_few_tries(make_orch) -> None:
    Renumbering.generation, Renumbering.renumber = 0, 10
    orch = make_orch({"systems": {"archive": {"connector": "renumbering"}}},
                     plugins=(Plugin(),))
    orch.systems["archive"].connector().seed({
        "c/1": ("message", {"email": "alice@example.com"}),
        "c/2": ("message", {"email": "carol@example.com"}),
    })
    rid = orch.submit(RequestSpec(RequestType.ERASURE, (("email", "alice@example.com"),),
                                  verified=True))
    for _ in range(6):
        if rid in orch.run().finished:
            break
    body = orch.ledger.receipts(rid)[0]["body"]
    assert body["outcome"] == "failed" and "stale" in " ".join(body.get("errors", []))
    assert orch.systems["archive"].connector().count() == 2  # nothing done blindly
