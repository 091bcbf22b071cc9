"""The orchestrator over the sql connector, as users hit it: mixed request types in one batch,
a thousand erasures at default settings, one blocked subject among many.

Each test is a finding of the safety review, reproduced on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sql_fixtures import Db, numbered_shop

from erasure import PluginHost, RequestType
from erasure.config import parse_config
from erasure.orchestrator import Orchestrator, RequestSpec
from erasure.receipts import verify_chain


@pytest.fixture
def orch_for(tmp_path: Path) -> Iterator[Any]:
    made: list[Orchestrator] = []

    def make(db: Db, host: dict[str, Any] | None = None) -> Orchestrator:
        system: dict[str, Any] = {
            "connector": "sql", "url": db.url,
            "tables": {"customers": {"identifiers": {"email": "email"}}, "orders": {}},
        }
        if db.schema:
            system["schema"] = db.schema
        plugins = PluginHost.load()
        cfg = parse_config(
            {"erasure": {"state_dir": str(tmp_path / "state"), **(host or {})},
             "systems": {"shop": system}},
            known_connectors={n: plugins.registry.get(n) for n in plugins.registry.names()})
        orch = Orchestrator(cfg, plugins, sleep=lambda _s: None)
        made.append(orch)
        return orch

    yield make
    for o in made:
        o.close()


def email(c: int) -> tuple[tuple[str, str], ...]:
    return (("email", f"user{c}@example.org"),)


def receipt(orch: Orchestrator, rid: str) -> dict[str, Any]:
    (r,) = orch.ledger.receipts(rid)
    return r["body"]


def test_mixed_request_types_in_one_batch_each_get_their_own_action(db: Db, orch_for) -> None:
    numbered_shop(db, 10, 3)
    orch = orch_for(db)
    kinds = {1: RequestType.ACCESS, 2: RequestType.ERASURE, 3: RequestType.FIND,
             4: RequestType.PORTABILITY, 5: RequestType.ERASURE, 6: RequestType.ACCESS}
    ids = orch.submit_many([RequestSpec(t, email(c), verified=True) for c, t in kinds.items()])
    rid = dict(zip(kinds, ids, strict=True))
    summary = orch.run()
    assert summary.ok and len(summary.finished) == 6
    # only the two erasures deleted anything
    assert {r["id"] for r in db.rows("customers")} == set(range(10)) - {2, 5}
    assert {r["customer_id"] for r in db.rows("orders")} == set(range(10)) - {2, 5}
    for c in (2, 5):
        body = receipt(orch, rid[c])
        assert (body["action"], body["outcome"], body["counts"]["done"]) == ("delete",
                                                                           "completed", 4)
    # each package holds its subject's customer row and orders, and nobody else's
    for c in (1, 4, 6):
        body = receipt(orch, rid[c])
        assert (body["action"], body["outcome"], body["counts"]["exported"]) == (
            "export", "completed", 4)
        path = orch.config.host.exports() / f"{rid[c]}.zip"
        with zipfile.ZipFile(path) as zf:
            records = json.loads(zf.read("shop.json"))["records"]
        assert [r["email"] for r in records["customers"]] == [f"user{c}@example.org"]
        assert sorted(r["id"] for r in records["orders"]) == [10 * c + k for k in range(3)]
    assert receipt(orch, rid[3])["action"] is None


def test_a_thousand_erasures_at_default_settings_all_complete(db: Db, orch_for) -> None:
    # Six rows a subject: with calls cut every 500 findings regardless of subjects, a
    # customer and its orders landed in different calls and two thirds failed.
    n = 1000
    numbered_shop(db, n + 50, 5)
    orch = orch_for(db)
    ids = orch.submit_many([RequestSpec(RequestType.ERASURE, email(c), verified=True)
                            for c in range(n)])
    summary = orch.run()
    assert dict(summary.outcomes) == {"completed": n}
    assert len(summary.finished) == n
    assert {r["id"] for r in db.rows("customers")} == set(range(n, n + 50))
    assert db.count("orders") == 50 * 5
    assert verify_chain(orch.ledger.receipts(), orch.keys.signing.public_key()).ok
    assert len(orch.ledger.receipts()) == len(ids)


def test_one_blocked_subject_fails_alone_and_its_batch_completes(db: Db, orch_for) -> None:
    numbered_shop(db, 12, 2)
    # An unmapped table whose RESTRICT foreign key blocks deleting one order of customer 4.
    sa.Table("refunds", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("order_id", sa.Integer,
                       sa.ForeignKey("orders.id", ondelete="RESTRICT"), nullable=False))
    db.create()
    db.insert("refunds", {"id": 1, "order_id": 40})
    orch = orch_for(db)
    subjects = [3, 4, 5, 6, 7, 8]
    ids = orch.submit_many([RequestSpec(RequestType.ERASURE, email(c), verified=True)
                            for c in subjects])
    orch.run()
    outcome = {c: receipt(orch, rid)["outcome"] for c, rid in zip(subjects, ids, strict=True)}
    assert outcome.pop(4) in ("failed", "partial")
    assert set(outcome.values()) == {"completed"}
    left = {r["id"] for r in db.rows("customers")}
    assert left == set(range(12)) - {3, 5, 6, 7, 8}
    assert {r["id"] for r in db.rows("orders") if r["customer_id"] == 4} == {40, 41}
