"""Many clients at once against one ``erasure serve`` with a PostgreSQL ledger: every
submission is answered, none is lost, none is recorded twice (also when two clients send the
same subject_request_id at the same moment), and every request the runner picks up reaches
its end with one receipt, the person's data erased.

The default run has 10 clients submit 10 requests each (100); ``ERASURE_API_LOAD=1`` (set by
``make test-long``) has 100 clients submit 10 each (1,000).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from apihelpers import start_server
from clihelpers import cli_env, memory_system, seed, stored_items, write_config

LONG = os.environ.get("ERASURE_API_LOAD") == "1"
CLIENTS, PER_CLIENT = (100, 10) if LONG else (10, 10)
#: every SHARED-th submission of a client is also sent, at the same moment, by its partner
SHARED = 3


def _plan(client: int) -> list[tuple[str, str, str]]:
    """(subject_request_id, email, ticket) of each submission of ``client``: its own, and
    every SHARED-th one the same as its partner's (clients 2k and 2k+1)."""
    pair = client // 2
    out = []
    for j in range(PER_CLIENT):
        if j % SHARED == 0:
            out.append((f"pair-{pair}-{j}", f"pair{pair}-{j}@load.example", f"LOAD-P{pair}"))
        else:
            out.append((f"own-{client}-{j}", f"own{client}-{j}@load.example", f"LOAD-{client}"))
    return out


def _body(srid: str, email: str, ticket: str) -> dict[str, Any]:
    return {"subject_request_id": srid, "subject_request_type": "erasure", "verified": True,
            "ticket": ticket,
            "subject_identities": [{"identity_type": "email", "identity_value": email}]}


def _token(url: str) -> str:
    from erasure.api.tokens import create_token
    from erasure.ledger import Ledger

    ledger = Ledger(url)
    try:
        return create_token(ledger, ["submit", "read"], None)[1]
    finally:
        ledger.close()


def test_concurrent_clients_lose_none_duplicate_none_and_all_finish(
        tmp_path: Path, pg_database: Any) -> None:
    plans = {c: _plan(c) for c in range(CLIENTS)}
    subjects = {(srid, email, ticket) for plan in plans.values() for srid, email, ticket in plan}
    crm = tmp_path / "crm.json"
    seed(crm, {f"contact/{srid}": ("contact", {"email": email}) for srid, email, _ in subjects})
    config = write_config(tmp_path, {"crm": memory_system(crm)}, host={
        "ledger": {"env": "API_LOAD_LEDGER"}, "api": {"poll_seconds": 5}})
    env = cli_env({"API_LOAD_LEDGER": pg_database.url})
    token = _token(pg_database.url)
    server = start_server(config, env=env)
    try:
        barriers = {p: threading.Barrier(2, timeout=60) for p in range(CLIENTS // 2)}

        def client(c: int) -> list[tuple[str, str, int]]:
            answers = []
            with httpx.Client(base_url=server.url, timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as http:
                for srid, email, ticket in plans[c]:
                    if srid.startswith("pair-"):
                        barriers[c // 2].wait()  # both partners send it now
                    r = http.post("/v1/requests", json=_body(srid, email, ticket))
                    assert r.status_code in (200, 201), r.text
                    answers.append((srid, r.json()["id"], r.status_code))
            return answers

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            answers = [a for chunk in pool.map(client, range(CLIENTS)) for a in chunk]

        # none lost, none duplicated: one request per subject_request_id, the same id to
        # every client that sent it, created (201) exactly once
        assert len(answers) == CLIENTS * PER_CLIENT
        ids: dict[str, set[str]] = {}
        for srid, rid, _ in answers:
            ids.setdefault(srid, set()).add(rid)
        assert all(len(v) == 1 for v in ids.values()), \
            [s for s, v in ids.items() if len(v) > 1]
        assert len(ids) == len(subjects)
        assert len({rid for v in ids.values() for rid in v}) == len(subjects)
        created = Counter(srid for srid, _, code in answers if code == 201)
        assert set(created) == set(ids) and set(created.values()) == {1}

        # every request reaches its end: read back through the API by ticket
        tickets = {ticket for _, _, ticket in subjects}
        deadline = time.monotonic() + (600 if LONG else 120)
        with httpx.Client(base_url=server.url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            while True:
                listed = [r for t in sorted(tickets)
                          for r in http.get("/v1/requests", params={"ticket": t}).json()]
                if all(r["status"] == "completed" for r in listed) \
                        or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        assert sorted(r["id"] for r in listed) == sorted(
            rid for v in ids.values() for rid in v)
        assert Counter(r["status"] for r in listed) == {"completed": len(subjects)}
    finally:
        server.stop()

    # processed once each: one receipt a request, and the people's data is gone
    from erasure.ledger import Ledger

    ledger = Ledger(pg_database.url)
    try:
        per_request = Counter(r["body"]["request"] for r in ledger.receipts())
    finally:
        ledger.close()
    assert per_request == {rid: 1 for v in ids.values() for rid in v}
    assert stored_items(crm) == {}


def test_a_status_read_is_one_statement_outside_any_transaction(
        make_orch: Any, pg_database: Any, monkeypatch: Any) -> None:
    """A client polls GET /v1/requests/{id}: on PostgreSQL it is one statement outside any
    transaction (no BEGIN, no ROLLBACK), and it still shows the request, its API fields
    and every task."""
    from sqlalchemy import event

    from erasure.api.schemas import SubmitRequest
    from erasure.api.service import ApiService

    monkeypatch.setenv("T_LEDGER_URL", pg_database.url)
    orch = make_orch({"erasure": {"ledger": {"env": "T_LEDGER_URL"}},
                      "systems": {"crm": {"connector": "memory", "store": "rt-crm"},
                                  "shop": {"connector": "memory", "store": "rt-shop"}}})
    service = ApiService(orch)
    status, _ = service.submit(SubmitRequest.model_validate(
        _body("rt-1", "rt@load.example", "LOAD-RT")), None)
    orch.run()
    seen: list[str] = []
    event.listen(orch.ledger.engine, "before_cursor_execute",
                 lambda _c, _cur, stmt, *_a: seen.append(stmt))
    event.listen(orch.ledger.engine, "begin", lambda conn: seen.append(
        "BEGIN" if not conn.connection.dbapi_connection.autocommit else "autocommit"))
    shown = service.status(status.id)
    assert len([s for s in seen if s not in ("BEGIN", "autocommit")]) == 1, seen
    assert "BEGIN" not in seen
    assert shown.status == "completed" and shown.subject_request_id == "rt-1"
    assert [s.system for s in shown.systems] == ["crm", "shop"]
