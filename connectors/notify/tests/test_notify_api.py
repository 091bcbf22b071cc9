"""A processor's signed confirmation posted to the HTTP API (`POST /v1/confirmations`) ends
its task, through a real `erasure serve` and the webhook receiver standing in for the
processor."""

from __future__ import annotations

import json
import time

import httpx
from apihelpers import start_server
from clihelpers import receipt_bodies
from erasure_notify.signing import signed_headers
from notify_fixtures import ENV, SECRET, hook


def _tasks(http: httpx.Client, rid: str) -> dict[str, str]:
    return {s["system"]: s["state"] for s in http.get(f"/v1/requests/{rid}").json()["systems"]}


def test_a_signed_confirmation_posted_to_the_api_ends_the_task(world, webhook):
    from erasure.api.tokens import create_token
    from erasure.ledger import Ledger

    config = world.config({"nexbridge": hook(webhook)}, api={"poll_seconds": 0.5})
    server = start_server(config, env=ENV)
    ledger = Ledger(f"sqlite:///{config.parent / 'state' / 'ledger.db'}")
    try:
        token = create_token(ledger, ["admin"], None)[1]
    finally:
        ledger.close()
    try:
        with server.client(token) as http:
            rid = http.post("/v1/requests", json={
                "subject_request_id": "conf-1", "subject_request_type": "erasure",
                "subject_identities": [{"identity_type": "email",
                                        "identity_value": "alice@example.com"}],
                "verified": True}).json()["id"]
            deadline = time.monotonic() + 30
            while _tasks(http, rid).get("nexbridge") != "awaiting_confirmation":
                assert time.monotonic() < deadline, http.get(f"/v1/requests/{rid}").text
                time.sleep(0.2)
            status = http.get(f"/v1/requests/{rid}").json()
            waiting = {s["system"]: s["waits"] for s in status["systems"]}
            assert waiting["nexbridge"] == "the processor's confirmation"
            # the processor was told: the request can no longer be withdrawn
            refused = http.delete(f"/v1/requests/{rid}")
            assert refused.status_code == 409 and "already acted" in refused.json()["detail"]
            (sent,) = webhook.received
            body = json.dumps({"type": "erasure.confirmation",
                               "message_id": sent["message_id"], "requests": [rid],
                               "reference": "NB-7781"}).encode()

            def post(raw: bytes, headers: dict[str, str], system: str = "nexbridge"
                     ) -> httpx.Response:
                return http.post("/v1/confirmations", params={"system": system},
                                 content=raw, headers=headers)

            forged = post(body, signed_headers("another-secret-0123456789", body))
            tampered = post(body.replace(b"NB-", b"XX-"), signed_headers(SECRET, body))
            stale = post(body, signed_headers(SECRET, body, now=time.time() - 3600))
            not_notify = post(body, signed_headers(SECRET, body), system="crm")
            assert [r.status_code for r in (forged, tampered, stale)] == [401, 401, 401]
            assert not_notify.status_code == 404
            assert _tasks(http, rid)["nexbridge"] == "awaiting_confirmation"
            good = post(body, signed_headers(SECRET, body))
            assert good.status_code == 200 and good.json() == {"confirmed": [rid]}
            again = post(body, signed_headers(SECRET, body))
            assert again.json() == {"confirmed": []}  # a repeat records nothing
            done = http.get(f"/v1/requests/{rid}").json()
            assert done["status"] == "completed", done
    finally:
        server.stop()
    (receipt,) = [r for r in receipt_bodies(config, rid) if r["system"] == "nexbridge"]
    assert receipt["notice"]["confirmation"] == "NB-7781"
