"""The ledger on a shared PostgreSQL: full flow, leases, chain and purge."""

from __future__ import annotations

import threading

import pytest

from erasure import RequestType
from erasure.orchestrator import RequestSpec
from erasure.receipts import verify_chain

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def pg_url(pg_database):
    return pg_database.url


def test_flow_and_concurrent_runs_on_postgresql(make_orch, pg_url, monkeypatch) -> None:
    monkeypatch.setenv("T_LEDGER_URL", pg_url)
    config = {"erasure": {"ledger": {"env": "T_LEDGER_URL"}, "batch_size": 7},
              "systems": {"crm": {"connector": "memory", "store": "pg-crm"}}}
    first = make_orch(config)
    items = {f"c/{i}": ("contact", {"email": f"user{i}@example.com"}) for i in range(40)}
    items["c/x"] = ("contact", {"email": "xuser1@example.com"})  # lookalike of user1
    first.systems["crm"].connector().seed(items)
    ids = first.submit_many([
        RequestSpec(RequestType.ERASURE, (("email", f"user{i}@example.com"),), verified=True)
        for i in range(40)
    ])
    second = make_orch(config)
    results = []
    threads = [threading.Thread(target=lambda o=o: results.append(o.run())) for o in
               (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2, "a run raised (its thread's exception is in the warnings)"
    finished = [rid for r in results for rid in r.finished]
    assert sorted(finished) == sorted(ids)  # every request once, none twice
    receipts = first.ledger.receipts()
    assert len(receipts) == 40 and len({r["body"]["request"] for r in receipts}) == 40
    assert verify_chain(receipts, first.keys.signing.public_key()).ok
    assert first.systems["crm"].connector().count() == 1  # only the lookalike is left
    assert all(r.identifiers is None for r in first.ledger.list_requests())
