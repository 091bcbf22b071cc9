"""Status callbacks whichever process runs the request: requests submitted over HTTP and
run by ``erasure run`` (cron) tell their receivers of every state change, signed with the
request's own secret, its token's or the server's, also when a receiver was down while the
run ended (``erasure serve``'s sender delivers later)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from apihelpers import CallbackReceiver, free_port, start_server
from clihelpers import (
    cli_env,
    ledger_query,
    memory_system,
    run_cli,
    seed,
    write_config,
)

SECRET = "callback-secret-0123456789abcdef"
HELPDESK = "helpdesk-secret-0123456789"
CRM = {
    "contact/1": ("contact", {"email": "bob@example.org", "customer_id": "C-1"}),
    "order/1": ("order", {"email": "bob@example.org"}),
    "contact/2": ("contact", {"email": "ann@example.org"}),
}


def _token(config: Path, scope: str = "admin", **kw: Any) -> str:
    from erasure.api.tokens import create_token
    from erasure.ledger import Ledger

    ledger = Ledger(f"sqlite:///{config.parent / 'state' / 'ledger.db'}")
    try:
        return create_token(ledger, [scope], None, **kw)[1]
    finally:
        ledger.close()


def _erasure(srid: str, email: str, **extra: Any) -> dict[str, Any]:
    return {"subject_request_id": srid, "subject_request_type": "erasure",
            "subject_identities": [{"identity_type": "email", "identity_value": email}],
            "verified": True, **extra}


def _wait_delivered(config: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = ledger_query(config, "SELECT count(*) FROM callbacks "
                            "WHERE delivered_at IS NULL")[0][0]
        if left == 0:
            return
        assert time.monotonic() < deadline, f"{left} callbacks not delivered"
        time.sleep(0.2)


def test_requests_run_by_cron_call_back_every_change_signed_with_their_own_secret(
        tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, CRM)
    # the server only records and sends: cron's `erasure run` processes the requests
    config = write_config(tmp_path, {"crm": memory_system(crm)}, host={
        "api": {"callback_secret": {"env": "API_CALLBACK_SECRET"}, "runner": False,
                "run_callback_seconds": 5}})
    env = cli_env({"API_CALLBACK_SECRET": SECRET, "HELPDESK_SECRET": HELPDESK})
    made = run_cli("tokens", "create", "--scope", "submit", "--callback-secret",
                   config=config, env=env)
    assert made.returncode == 0, made.stderr
    *_, note, made_secret, _token_line, token_made = made.stdout.strip().splitlines()
    assert "shown once" in note and made_secret.startswith("cbs_")
    # what `tokens create --callback-secret-env HELPDESK_SECRET` stores (one CLI start less)
    token_env = _token(config, "submit", callback_secret="env:HELPDESK_SECRET")
    stored = [r[0] for r in ledger_query(config, "SELECT callback_secret FROM api_tokens")]
    assert "env:HELPDESK_SECRET" in stored and not any(made_secret in r for r in stored)
    plain = _token(config, "submit")
    own = "per-request-secret-0123456789"
    port = free_port()  # the server-signed receiver: nothing listens there yet
    receivers = {name: CallbackReceiver(secret.encode()).start() for name, secret in
                 [("made", made_secret), ("env", HELPDESK), ("own", own)]}
    receivers["server"] = CallbackReceiver(SECRET.encode(), port=port)
    with ThreadPoolExecutor(max_workers=1) as pool:  # listed while the server starts
        listing = pool.submit(run_cli, "tokens", "list", config=config, env=env)
        server = start_server(config, env=env)
        listed = listing.result()
    try:
        assert "env HELPDESK_SECRET" in listed.stdout and "its own secret" in listed.stdout
        assert made_secret not in listed.stdout
        cases = [("server", plain, "bob@example.org", {}),
                 ("made", token_made, "ann@example.org", {}),
                 ("env", token_env, "x1@example.org", {}),
                 ("own", plain, "x2@example.org", {"status_callback_secret": own})]
        ids = {}
        for name, token, email, extra in cases:
            with server.client(token) as http:
                r = http.post("/v1/requests", json=_erasure(
                    f"cb-{name}", email, status_callback_urls=[receivers[name].url],
                    **extra))
                assert r.status_code == 201, r.text
                ids[name] = r.json()["id"]
        run = run_cli("run", config=config, env=env)
        assert run.returncode == 0, run.stderr
        # the run sent at its end (bounded); one receiver was down: those wait in the ledger
        left = ledger_query(config, "SELECT DISTINCT request_id, attempts FROM callbacks "
                            "WHERE delivered_at IS NULL")
        assert {rid for rid, _a in left} == {ids["server"]}
        assert all(a >= 1 for _r, a in left)
        receivers["server"].start()
        _wait_delivered(config)  # by serve's sender
    finally:
        log = server.stop()
        for receiver in receivers.values():
            receiver.stop()
    assert own not in log and HELPDESK not in log
    assert not ledger_query(config, "SELECT 1 FROM api_requests WHERE callback_secret "
                            "LIKE ?", f"%{own}%")
    for name, receiver in receivers.items():
        events = receiver.received
        # every one verified with this request's own secret: none signed otherwise
        assert receiver.refused == 0 and events, name
        rid = ids[name]
        queued = {r[0] for r in ledger_query(config, "SELECT event_id FROM callbacks "
                                             "WHERE request_id = ?", rid)}
        assert {c["event_id"] for c in events} == queued, name
        # every state change of every task, as the ledger recorded it, was called back
        moves = sorted((s, new) for s, new in ledger_query(
            config, "SELECT system, new FROM task_events WHERE request_id = ? "
            "AND old != new", rid))
        told = sorted((c["system"], c["state"]) for c in events
                      if c["event"] == "task_changed")
        assert told == moves and ("crm", "done") in told, name
        (finished,) = [c for c in events if c["event"] == "request_finished"]
        assert finished["status"] == "completed", name
        assert finished["subject_request_id"] == f"cb-{name}"
        assert finished["systems"] == [{"system": "crm", "outcome": "completed"}]
        assert not any("@" in json.dumps(c) for c in events)


def test_callback_urls_without_any_signing_secret_are_refused(tmp_path: Path) -> None:
    """In-process: no secret of the request, its token or the server: 422, nothing kept."""
    from erasure.api.schemas import SubmitRequest
    from erasure.api.service import ApiError, ApiService
    from erasure.config import load_config
    from erasure.orchestrator import Orchestrator
    from erasure.plugins import PluginHost

    config = write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")})
    plugins = PluginHost.load()
    orch = Orchestrator(load_config(config, known_connectors=plugins.registry.classes()),
                        plugins)
    try:
        body = SubmitRequest.model_validate(_erasure(
            "no-secret", "bob@example.org", status_callback_urls=["http://127.0.0.1:9/x"]))
        with pytest.raises(ApiError, match="signing secret") as err:
            ApiService(orch).submit(body, None)
        assert err.value.status == 422
        assert orch.ledger.count_requests("open") == 0
    finally:
        orch.close()
