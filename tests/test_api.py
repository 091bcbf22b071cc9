"""The HTTP API (`erasure serve`), through a real uvicorn server on 127.0.0.1 and httpx:
tokens and scopes, idempotent intake, bad bodies, requests processed by the same engine as
the CLI's, cancel, and signed status callbacks (also to a receiver that was down)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from apihelpers import (
    CallbackReceiver,
    Server,
    free_port,
    make_token,
    start_server,
    wait_for,
)
from clihelpers import (
    cli_env,
    ledger_path,
    ledger_query,
    memory_system,
    receipt_bodies,
    run_cli,
    run_many,
    seed,
    stored_items,
    write_config,
)

SECRET = "callback-secret-0123456789abcdef"
ENV = cli_env({"API_CALLBACK_SECRET": SECRET})
#: what the memory CRM holds: two people with the same shape of data
CRM = {
    "contact/1": ("contact", {"email": "bob@example.org", "customer_id": "C-1"}),
    "order/1": ("order", {"email": "bob@example.org"}),
    "contact/2": ("contact", {"email": "ann@example.org", "customer_id": "C-2"}),
    "order/2": ("order", {"email": "ann@example.org"}),
    "contact/3": ("contact", {"email": "cat@example.org"}),
    "contact/4": ("contact", {"email": "dan@example.org"}),
    "contact/5": ("contact", {"email": "eve@example.org", "customer_id": "C-5"}),
}
MAX_BODY = 4096


@dataclass
class Api:
    server: Server
    config: Path
    crm: Path
    tokens: dict[str, str]

    def client(self, scope: str = "admin") -> httpx.Client:
        return self.server.client(self.tokens[scope])


def _erasure(srid: str, email: str, **extra: Any) -> dict[str, Any]:
    return {"subject_request_id": srid, "subject_request_type": "erasure",
            "subject_identities": [{"identity_type": "email", "identity_value": email,
                                    "identity_format": "raw"}],
            "verified": True, **extra}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    crm = root / "crm.json"
    seed(crm, CRM)
    config = write_config(root, {"crm": memory_system(crm)}, host={
        "api": {"callback_secret": {"env": "API_CALLBACK_SECRET"}, "max_body_bytes": MAX_BODY,
                "poll_seconds": 0.5}})
    server = start_server(config, env=ENV)
    tokens = _tokens(config, "submit", "read", "package", "admin")
    yield Api(server, config, crm, tokens)
    log = server.stop()
    # identifiers travel only in bodies: never in the server's log
    assert "@example.org" not in log


def _tokens(config: Path, *scopes: str, expires_at: Any = None) -> dict[str, str]:
    """Tokens made in this process, straight into the ledger (the CLI's own path is
    tested once: a CLI start per token would cost seconds)."""
    from erasure.api.tokens import create_token
    from erasure.ledger import Ledger

    ledger = Ledger(f"sqlite:///{config.parent / 'state' / 'ledger.db'}")
    try:
        return {s: create_token(ledger, [s], expires_at)[1] for s in scopes}
    finally:
        ledger.close()


# auth ------------------------------------------------------------------------------------

#: every route that needs a token, and the scope it needs
ROUTES = [
    ("POST", "/v1/requests", "submit"),
    ("GET", "/v1/requests?ticket=T-1", "read"),
    ("GET", "/v1/requests/r-0000000000000000", "read"),
    ("DELETE", "/v1/requests/r-0000000000000000", "submit"),
    ("GET", "/v1/requests/r-0000000000000000/receipts", "read"),
    ("GET", "/v1/requests/r-0000000000000000/package", "package"),
    ("GET", "/v1/chain-head", "read"),
]


def test_every_route_refuses_missing_wrong_scope_expired_and_revoked_tokens(api: Api) -> None:
    from datetime import timedelta

    from erasure.ledger import utcnow

    expired = _tokens(api.config, "admin", expires_at=utcnow() - timedelta(seconds=1))["admin"]
    revoked = make_token(api.config, "admin", env=ENV)
    revoked_id = revoked.split("_")[1]
    listed, gone, unknown = run_many(("tokens", "list"), ("tokens", "revoke", revoked_id),
                                     ("tokens", "revoke", "tk000000000000"),
                                     config=api.config, env=ENV)
    assert revoked_id in listed.stdout and revoked not in listed.stdout
    assert (gone.returncode, unknown.returncode) == (0, 2), gone.stderr
    forged = api.tokens["admin"][:-4] + "AAAA"
    body = _erasure("auth-1", "nobody@example.com")
    with httpx.Client(base_url=api.server.url, timeout=30) as http:
        for method, path, scope in ROUTES:
            kw: dict[str, Any] = {"json": body} if method == "POST" else {}
            for token, want in [(None, 401), ("not-a-token", 401), (forged, 401),
                                (expired, 401), (revoked, 401)]:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                r = http.request(method, path, headers=headers, **kw)
                assert r.status_code == want, (method, path, token, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
            for other in ("submit", "read", "package"):
                r = http.request(method, path, headers={
                    "Authorization": f"Bearer {api.tokens[other]}"}, **kw)
                if other == scope:
                    assert r.status_code not in (401, 403), (method, path, r.text)
                else:
                    assert r.status_code == 403, (method, path, other, r.text)
            r = http.request(method, path, headers={
                "Authorization": f"Bearer {api.tokens['admin']}"}, **kw)
            assert r.status_code not in (401, 403), (method, path, r.text)
        # public: the key that verifies receipts, and the probes
        assert http.get("/v1/public-key").json()["public_key"]
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ready"}
        # the OpenAPI document names every route
        paths = http.get("/openapi.json").json()["paths"]
        assert {"/v1/requests", "/v1/requests/{request_id}", "/v1/confirmations",
                "/v1/requests/{request_id}/receipts", "/v1/requests/{request_id}/package",
                "/v1/public-key", "/v1/chain-head", "/healthz", "/readyz"} <= set(paths)


def test_a_bad_token_is_refused_before_its_body_or_parameters_are_looked_at(api: Api) -> None:
    """Without a valid token (401), or with one of another scope (403), a caller learns
    nothing of its body's or parameters' errors; with the scope it gets the field errors.
    A body that is not JSON at all is refused (422) before the token is looked at."""
    wrong = {"subject_request_type": "deletion", "subject_identities": []}
    keyed = {"Idempotency-Key": "not a key"}
    with httpx.Client(base_url=api.server.url, timeout=30) as http:
        # (token, the scope it lacks, the answer)
        for token, lacks, want in [(None, None, 401), ("not-a-token", None, 401),
                                   (api.tokens["read"], "submit", 403),
                                   (api.tokens["submit"], "read", 403)]:
            auth = {"Authorization": f"Bearer {token}"} if token else {}
            answers = []
            if lacks != "submit":
                answers.append(http.get("/v1/requests", headers=auth))  # no ticket
            if lacks != "read":
                answers += [http.post("/v1/requests", json=wrong, headers=auth),
                            http.post("/v1/requests", json=_erasure("k-1", "x@example.com"),
                                      headers=auth | keyed)]
            for r in answers:
                assert r.status_code == want, (token, r.request.url, r.text)
                detail = r.json()["detail"]
                assert isinstance(detail, str) and (lacks or "token") in detail, detail
                assert (r.headers.get("www-authenticate") == "Bearer") == (want == 401)
        not_json = http.post("/v1/requests", content=b"{not json",
                             headers={"Content-Type": "application/json"})
        assert not_json.status_code == 422 and not_json.json()["detail"][0]["loc"][0] == "body"
    with api.client("submit") as http:
        fields = http.post("/v1/requests", json=wrong).json()["detail"]
        assert {e["loc"][1] for e in fields} >= {"subject_request_type", "subject_identities"}
        keyed_fields = http.post("/v1/requests", json=_erasure("k-1", "x@example.com"),
                                 headers=keyed).json()["detail"]
        assert [e["loc"] for e in keyed_fields] == [["header", "idempotency-key"]]
    with api.client("read") as http:
        assert http.get("/v1/requests").json()["detail"][0]["loc"] == ["query", "ticket"]


def test_each_answer_is_logged_without_its_query_and_an_unexpected_error_is_a_bare_500(
        tmp_path: Path) -> None:
    """The access log has one line per answer: method, path, status and time, never the
    query string. An unexpected error (here the ledger's token table gone under a running
    server) is answered 500 "internal error" and logged by its type only (its message could
    carry a value from the request), without a traceback."""
    import re
    import sqlite3

    config = write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")},
                          host={"api": {"runner": False}})
    server = start_server(config)
    token = _tokens(config, "read")["read"]
    try:
        with server.client(token) as http:
            assert http.get("/v1/requests", params={"ticket": "T-QUERY"}).json() == []
            db = sqlite3.connect(ledger_path(config), timeout=30)
            db.execute("ALTER TABLE api_tokens RENAME TO api_tokens_gone")
            db.commit()
            db.close()
            broken = http.get("/v1/requests/r-0000000000000000")
    finally:
        log = server.stop()
    assert broken.status_code == 500 and broken.json() == {"detail": "internal error"}
    lines = log.splitlines()
    for want in (r"INFO erasure\.api\.access: GET /v1/requests 200 \d+\.\dms",
                 r"ERROR erasure\.api: GET /v1/requests/r-0+ failed: OperationalError",
                 r"INFO erasure\.api\.access: GET /v1/requests/r-0+ 500 \d+\.\dms"):
        assert any(re.fullmatch(want, line) for line in lines), (want, log[-3000:])
    assert "T-QUERY" not in log and "ticket" not in log, log[-3000:]
    assert "Traceback" not in log and "no such table" not in log, log[-3000:]


# intake ----------------------------------------------------------------------------------


def test_the_same_submission_twice_is_one_request(api: Api) -> None:
    with api.client("submit") as http:
        first = http.post("/v1/requests", json=_erasure("dup-1", "cat@example.org",
                                                        ticket="T-DUP"))
        again = http.post("/v1/requests", json=_erasure("dup-1", "cat@example.org",
                                                        ticket="T-DUP"))
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
        # the Idempotency-Key header makes a retried POST safe too
        keyed = [http.post("/v1/requests", headers={"Idempotency-Key": "key-77"},
                           json=_erasure("dup-2", "cat@example.org")) for _ in (1, 2)]
        assert [r.status_code for r in keyed] == [201, 200]
        assert keyed[0].json()["id"] == keyed[1].json()["id"] != first.json()["id"]
        # the key reused for another request: refused, naming the request it has
        reused = http.post("/v1/requests", headers={"Idempotency-Key": "key-77"},
                           json=_erasure("dup-3", "cat@example.org"))
        assert reused.status_code == 409 and keyed[0].json()["id"] in reused.json()["detail"]
    with api.client("read") as http:
        listed = http.get("/v1/requests", params={"ticket": "T-DUP"}).json()
    assert [r["id"] for r in listed] == [first.json()["id"]]
    assert ledger_query(api.config, "SELECT count(*) FROM requests WHERE ticket = ?",
                        "T-DUP") == [(1,)]


def test_malformed_and_oversized_bodies_are_refused_without_echo_or_trace(api: Api) -> None:
    before = ledger_query(api.config, "SELECT count(*) FROM requests")
    secret_value = "zed@hidden.example"
    with api.client("submit") as http:
        bad_json = http.post("/v1/requests", content=b"{not json",
                             headers={"Content-Type": "application/json"})
        not_text = http.post("/v1/requests", content=b"8\xff\xfe.\x80",  # not UTF-8
                             headers={"Content-Type": "application/json"})
        missing = http.post("/v1/requests", json={"subject_request_type": "erasure"})
        wrong = http.post("/v1/requests", json=_erasure("m-1", secret_value) | {
            "subject_request_type": "deletion", "subject_identities": [
                {"identity_type": "shoe_size", "identity_value": secret_value}]})
        unverified = http.post("/v1/requests", json=_erasure("m-2", secret_value,
                                                             verified=False))
        hashed = http.post("/v1/requests", json=_erasure("m-3", secret_value) | {
            "subject_identities": [{"identity_type": "email", "identity_value": "ab" * 32,
                                    "identity_format": "sha256"}]})
        big = http.post("/v1/requests", json=_erasure("m-4", secret_value,
                                                      ticket="x" * MAX_BODY))
        # a valid RFC 3339 time with no instant in UTC (before year 1 there): was a 500
        before_utc = http.post("/v1/requests", json=_erasure(
            "m-6", secret_value, submitted_time="0001-01-01T13:59:59+14:00"))

        def chunks() -> Iterator[bytes]:
            yield b'{"subject_request_id": "m-5", "ticket": "'
            for _ in range(MAX_BODY // 512 + 2):
                yield b"y" * 512
            yield b'"}'

        chunked = http.post("/v1/requests", content=chunks(),
                            headers={"Content-Type": "application/json"})
    for r in (bad_json, not_text, missing, wrong, unverified, hashed, before_utc):
        assert r.status_code == 422, r.text
    assert before_utc.json()["detail"][0]["loc"] == ["body", "submitted_time"]
    assert not_text.json()["detail"][0]["loc"] == ["body"]
    locs = {tuple(e["loc"]) for e in missing.json()["detail"]}
    assert ("body", "subject_request_id") in locs and ("body", "subject_identities") in locs
    assert {tuple(e["loc"][:2]) for e in wrong.json()["detail"]} >= {
        ("body", "subject_request_type"), ("body", "subject_identities")}
    assert "not marked verified" in unverified.json()["detail"][0]["msg"]
    assert (big.status_code, chunked.status_code) == (413, 413)
    for r in (bad_json, missing, wrong, unverified, hashed, big, chunked, before_utc):
        assert secret_value not in r.text and "Traceback" not in r.text
    assert ledger_query(api.config, "SELECT count(*) FROM requests") == before


# processing ------------------------------------------------------------------------------

#: what differs between two people's receipts of the same work
_VARYING = {"request", "seq", "prev", "ticket", "received_at", "due_at", "started_at",
            "finished_at", "items", "review_items", "residue_items", "key_id"}


def _comparable(receipt: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in receipt.items() if k not in _VARYING} | {
        "n_items": len(receipt["items"])}


def test_a_request_through_the_api_gets_the_receipts_the_cli_gives(api: Api) -> None:
    from erasure.heads import verify_export
    from erasure.keys import public_key_from_text

    with api.client("submit") as http:
        made = http.post("/v1/requests", json=_erasure("same-1", "bob@example.org",
                                                       ticket="T-BOB"))
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    with api.client("read") as http:
        done = wait_for(http, rid, ("completed", "failed"))
        exported = http.get(f"/v1/requests/{rid}/receipts").json()
        head = http.get("/v1/chain-head").json()
    assert done["status"] == "completed" and done["outcome"] == "completed"
    assert done["systems"] == [{"system": "crm", "state": "done", "outcome": "completed",
                                "waits": None, "not_before": None}]
    assert "contact/1" not in stored_items(api.crm) and "order/1" not in stored_items(api.crm)
    # the same erasure of another person by the CLI
    cli = run_cli("erase", "--email", "ann@example.org", "--verified", "--ticket", "T-ANN",
                  config=api.config, env=ENV)
    assert cli.returncode == 0, cli.stderr
    ann = ledger_query(api.config, "SELECT id FROM requests WHERE ticket = 'T-ANN'")[0][0]
    if "another run is working on it" in cli.stdout:  # serve's runner took it first
        with api.client("read") as http:
            wait_for(http, ann, ("completed",))
    assert [_comparable(r) for r in receipt_bodies(api.config, rid)] == \
        [_comparable(r) for r in receipt_bodies(api.config, ann)]
    # what the API serves is the signed receipts, verifiable offline with the public key
    key = public_key_from_text(exported["public_key"])
    assert [r["body"] for r in exported["receipts"]] == receipt_bodies(api.config, rid)
    assert verify_export(exported, key, subset=True).ok
    assert head["count"] >= 1 and len(head["last"]) == 64


def test_status_callbacks_are_signed_and_reach_a_receiver_that_was_down(api: Api) -> None:
    port = free_port()  # nothing listens there yet
    receiver = CallbackReceiver(SECRET.encode(), port=port)
    url = f"http://127.0.0.1:{port}/erasure-status"
    with api.client("submit") as http:
        rid = http.post("/v1/requests", json=_erasure(
            "cb-1", "dan@example.org", status_callback_urls=[url])).json()["id"]
    with api.client("read") as http:
        wait_for(http, rid, ("completed",))
    time.sleep(1.5)  # the first attempts fail: the receiver is down
    tried = ledger_query(api.config, "SELECT attempts, delivered_at FROM callbacks "
                         "WHERE request_id = ?", rid)
    assert tried and all(a >= 1 and d is None for a, d in tried)
    receiver.start()
    try:
        # every event, not only the last: earlier ones were queued (and failed) earlier,
        # so their next attempts come later
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and ledger_query(
                api.config, "SELECT 1 FROM callbacks WHERE request_id = ? AND "
                "delivered_at IS NULL", rid):
            time.sleep(0.2)
    finally:
        receiver.stop()
    events = receiver.received
    assert receiver.refused == 0
    assert {c["request_id"] for c in events} == {rid}
    assert all(c["subject_request_id"] == "cb-1" for c in events)
    assert len({c["event_id"] for c in events}) == len(events)
    # at least once, not in order: each carries its event id and the state it tells of
    states = {c["state"] for c in events if c["event"] == "task_changed"}
    assert {"found", "done"} <= states
    finished = [c for c in events if c["event"] == "request_finished"]
    assert finished == [finished[0]] and finished[0]["status"] == "completed"
    assert not any("@" in json.dumps(c) for c in events)


def test_a_forged_callback_signature_is_what_the_receiver_refuses(api: Api) -> None:
    """The receiver's check (docs/api.md) is what makes the callback trustworthy."""
    receiver = CallbackReceiver(SECRET.encode())
    body = b'{"event":"request_finished"}'
    ts = str(int(time.time()))
    from erasure.callbacks import sign

    assert receiver.verify({"X-Erasure-Timestamp": ts,
                            "X-Erasure-Signature": sign(SECRET.encode(), ts, body)}, body)
    assert not receiver.verify({"X-Erasure-Timestamp": ts,
                                "X-Erasure-Signature": sign(b"other", ts, body)}, body)
    stale = str(int(time.time()) - 3600)
    assert not receiver.verify({"X-Erasure-Timestamp": stale,
                                "X-Erasure-Signature": sign(SECRET.encode(), stale, body)},
                               body)


def test_an_access_package_is_given_out_once_asked_for_with_the_package_scope(api: Api
                                                                              ) -> None:
    import io
    import zipfile

    with api.client("submit") as http:
        rid = http.post("/v1/requests", json={
            "subject_request_id": "acc-1", "subject_request_type": "access",
            "subject_identities": [{"identity_type": "email",
                                    "identity_value": "eve@example.org"}],
            "verified": True}).json()["id"]
    with api.client("read") as http:
        done = wait_for(http, rid, ("completed", "failed"))
        assert done["status"] == "completed" and done["links"]["package"]
        assert http.get(f"/v1/requests/{rid}/package").status_code == 403
    with api.client("package") as http:
        got = http.get(f"/v1/requests/{rid}/package")
        erasure_id = http.get("/v1/requests", params={"ticket": "T-BOB"})
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(got.content)).namelist()
    assert names and any("eve@example.org" in zipfile.ZipFile(io.BytesIO(got.content))
                         .read(n).decode(errors="replace") for n in names)
    assert erasure_id.status_code == 403  # the package scope reads nothing else
    assert ledger_query(api.config, "SELECT delivered_at IS NOT NULL FROM packages "
                        "WHERE request_id = ?", rid) == [(1,)]
    # an erasure has no package
    with api.client("admin") as http:
        erasure = http.post("/v1/requests", json=_erasure("acc-2", "nobody@nowhere.example")
                            ).json()["id"]
        assert http.get(f"/v1/requests/{erasure}/package").status_code == 404


# cancel ----------------------------------------------------------------------------------


def _awaiting_approval(http: httpx.Client, rid: str) -> None:
    """Wait until the request's status says it waits for approval (found everywhere)."""
    deadline = time.monotonic() + 30
    while True:
        body = http.get(f"/v1/requests/{rid}").json()
        waits = [s["waits"] or "" for s in body["systems"]]
        if body["status"] == "in_progress" and waits and all(
                w.startswith("approval") for w in waits):
            return
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_cancel_before_anything_was_done_and_not_after(tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, CRM)
    config = write_config(tmp_path, {"crm": memory_system(crm)}, host={
        "require_approval": True, "api": {"poll_seconds": 0.5}})
    server = start_server(config)
    token = _tokens(config, "admin")["admin"]
    try:
        with server.client(token) as http:
            rid = http.post("/v1/requests", json=_erasure("c-1", "bob@example.org")
                            ).json()["id"]
            _awaiting_approval(http, rid)
            cancelled = http.delete(f"/v1/requests/{rid}")
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"
            assert http.get(f"/v1/requests/{rid}").json()["status"] == "cancelled"
            again = http.delete(f"/v1/requests/{rid}")
            assert again.status_code == 409
            assert http.delete("/v1/requests/r-nope").status_code == 404
            # once a system acted, the request can no longer be withdrawn
            other = http.post("/v1/requests", json=_erasure("c-2", "ann@example.org")
                              ).json()["id"]
            _awaiting_approval(http, other)
            assert run_cli("approve", other, config=config).returncode == 0  # the runner acts
            assert wait_for(http, other, ("completed",))["status"] == "completed"
            assert http.delete(f"/v1/requests/{other}").status_code == 409
    finally:
        server.stop()
    # nothing of Bob's was erased; his receipt says why the request ended
    assert "contact/1" in stored_items(crm) and "contact/2" not in stored_items(crm)
    (receipt,) = receipt_bodies(config, rid)
    assert receipt["outcome"] == "failed" and receipt["errors"]


def test_other_commands_do_not_load_the_web_stack() -> None:
    import subprocess
    import sys

    probe = ("import sys, erasure.cli; "
             "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'httpx') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, env=cli_env())
    assert out.stdout.strip() == "[]", out.stderr


def test_serve_refuses_a_runner_that_would_lose_package_passwords(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")},
                          host={"package_password": True})
    proc = run_cli("serve", "--port", "0", config=config, timeout=60)
    assert proc.returncode == 2 and "runner = false" in proc.stderr, proc.stderr
