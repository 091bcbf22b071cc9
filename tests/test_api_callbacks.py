"""Status callbacks whichever process runs the request: a request submitted over HTTP and
run by ``erasure run`` (cron) tells its receiver of every state change, signed, also when
the receiver was down while the run ended (``erasure serve``'s sender delivers later)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from apihelpers import CallbackReceiver, free_port, start_server
from clihelpers import cli_env, ledger_query, memory_system, run_cli, seed, write_config

SECRET = "callback-secret-0123456789abcdef"
ENV = cli_env({"API_CALLBACK_SECRET": SECRET})
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


def _wait_delivered(config: Path, rid: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = ledger_query(config, "SELECT count(*) FROM callbacks WHERE request_id = ? "
                            "AND delivered_at IS NULL", rid)[0][0]
        if left == 0:
            return
        assert time.monotonic() < deadline, f"{left} callbacks not delivered"
        time.sleep(0.2)


def test_a_request_run_by_cron_calls_back_every_change_after_the_receiver_was_down(
        tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, CRM)
    # the server only records and sends: cron's `erasure run` processes the request
    config = write_config(tmp_path, {"crm": memory_system(crm)}, host={
        "api": {"callback_secret": {"env": "API_CALLBACK_SECRET"}, "runner": False,
                "run_callback_seconds": 2}})
    server = start_server(config, env=ENV)
    try:
        token = _token(config)
        port = free_port()  # nothing listens there yet
        url = f"http://127.0.0.1:{port}/erasure-status"
        with server.client(token) as http:
            rid = http.post("/v1/requests", json=_erasure(
                "cron-1", "bob@example.org", status_callback_urls=[url])).json()["id"]
        run = run_cli("run", config=config, env=ENV)
        assert run.returncode == 0, run.stderr
        # the run tried to send at its end (bounded), the receiver being down
        tried = ledger_query(config, "SELECT attempts, delivered_at FROM callbacks "
                             "WHERE request_id = ?", rid)
        assert tried and all(d is None for _a, d in tried)
        assert any(a >= 1 for a, _d in tried)
        receiver = CallbackReceiver(SECRET.encode(), port=port).start()
        try:
            _wait_delivered(config, rid)
        finally:
            receiver.stop()
    finally:
        server.stop()
    events = receiver.received
    assert receiver.refused == 0  # every one verified by its signature
    queued = {r[0] for r in ledger_query(config, "SELECT event_id FROM callbacks "
                                         "WHERE request_id = ?", rid)}
    assert {c["event_id"] for c in events} == queued
    # every state change of every task, as the ledger recorded it, was called back
    moves = sorted((s, new) for s, new in ledger_query(
        config, "SELECT system, new FROM task_events WHERE request_id = ? AND old != new",
        rid))
    told = sorted((c["system"], c["state"]) for c in events if c["event"] == "task_changed")
    assert told == moves and ("crm", "done") in told
    (finished,) = [c for c in events if c["event"] == "request_finished"]
    assert finished["status"] == "completed" and finished["subject_request_id"] == "cron-1"
    assert finished["systems"] == [{"system": "crm", "outcome": "completed"}]
    assert not any("@" in json.dumps(c) for c in events)


def _wait_finished(receiver: CallbackReceiver, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [c for c in receiver.received if c["event"] == "request_finished"]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no request_finished (refused {receiver.refused})")


def test_callbacks_are_signed_with_the_request_s_or_the_token_s_own_secret(
        tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, CRM)
    # no server-wide secret: each request's callbacks are signed by its own or its token's
    config = write_config(tmp_path, {"crm": memory_system(crm)},
                          host={"api": {"poll_seconds": 0.5}})
    env = cli_env({"HELPDESK_SECRET": "helpdesk-secret-0123456789"})
    made = run_cli("tokens", "create", "--scope", "submit", "--callback-secret",
                   config=config, env=env)
    assert made.returncode == 0, made.stderr
    *_, note, made_secret, _token_line, token_made = made.stdout.strip().splitlines()
    assert "shown once" in note and made_secret.startswith("cbs_")
    assert made_secret not in ledger_query(config, "SELECT callback_secret FROM api_tokens")[0][0]
    token_env = _token(config, "submit", callback_secret="env:HELPDESK_SECRET")
    plain = _token(config, "submit")
    listed = run_cli("tokens", "list", config=config, env=env)
    assert "env HELPDESK_SECRET" in listed.stdout and "its own secret" in listed.stdout
    assert made_secret not in listed.stdout
    own = "per-request-secret-0123456789"
    receivers = {name: CallbackReceiver(secret.encode()).start() for name, secret in
                 [("made", made_secret), ("env", "helpdesk-secret-0123456789"),
                  ("own", own)]}
    server = start_server(config, env=env)
    try:
        cases = [("made", token_made, {}), ("env", token_env, {}),
                 ("own", plain, {"status_callback_secret": own})]
        for n, (name, token, extra) in enumerate(cases):
            with server.client(token) as http:
                r = http.post("/v1/requests", json=_erasure(
                    f"sec-{n}", "ann@example.org" if n == 0 else f"x{n}@example.org",
                    status_callback_urls=[receivers[name].url], **extra))
                assert r.status_code == 201, r.text
        for name, receiver in receivers.items():
            assert _wait_finished(receiver)["status"] == "completed", name
        # a request with callback URLs and no secret anywhere is refused, not left unsigned
        with server.client(plain) as http:
            r = http.post("/v1/requests", json=_erasure(
                "sec-9", "ann@example.org", status_callback_urls=[receivers["own"].url]))
        assert r.status_code == 422 and "signing secret" in r.json()["detail"][0]["msg"], \
            r.text
    finally:
        log = server.stop()
        for receiver in receivers.values():
            receiver.stop()
    # each receiver verified everything it got with its own secret: none signed otherwise
    assert [r.refused for r in receivers.values()] == [0, 0, 0]
    assert own not in log and "helpdesk-secret" not in log
    assert not ledger_query(config, "SELECT 1 FROM api_requests WHERE callback_secret "
                            "LIKE ?", f"%{own}%")
