"""The Zendesk ticket trigger through a real ``erasure serve`` and the local Zendesk fake:
a tagged ticket's signed webhook becomes a request (once per ticket and type), forged, stale and
replayed signatures are refused with nothing recorded, and the request's end comes back on
the ticket as an internal note with the outcome table, the receipts attached and a status
tag."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from apihelpers import start_server
from clihelpers import cli_env, ledger_query, memory_system, seed, stored_items, write_config

pytest.importorskip("erasure_zendesk")

from erasure_zendesk.testing.server import FakeZendesk, Faults  # noqa: E402

WEBHOOK_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
ENV = cli_env({"ZD_WEBHOOK_SECRET": WEBHOOK_SECRET, "ZD_API_TOKEN": "fake-api-token"})
CRM = {
    "contact/1": ("contact", {"email": "bob@example.org", "customer_id": "C-1"}),
    "order/1": ("order", {"customer_id": "C-1"}),
    "contact/2": ("contact", {"email": "ann@example.org"}),
}


def _stamp(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _signed(body: bytes, secret: str = WEBHOOK_SECRET, stamp: str | None = None
            ) -> dict[str, str]:
    """Headers as Zendesk sends them: base64(HMAC-SHA256(secret, timestamp + body))."""
    import base64
    import hashlib
    import hmac

    stamp = stamp or _stamp()
    mac = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {"X-Zendesk-Webhook-Signature": base64.b64encode(mac).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "Content-Type": "application/json"}


@pytest.fixture()
def zendesk() -> Iterator[FakeZendesk]:
    # the first ticket update commits and then answers 503, as a Zendesk outage can: the
    # note is retried from the ledger and must not be posted twice
    faults = Faults(after_commit=Counter({"PUT /tickets/{id}": 1}))
    with FakeZendesk(email="agent@example.com", token="fake-api-token",
                     faults=faults) as fake:
        yield fake


def test_a_tagged_ticket_becomes_a_request_and_gets_its_outcome_note(
        tmp_path: Path, zendesk: FakeZendesk) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, CRM)
    store = zendesk.store
    bob = store.add_user("Bob", "bob@example.org")
    ticket = store.add_ticket(bob, "Please delete my data", [(bob, "Delete everything.")],
                              tags=["gdpr_erasure", "identity_verified"],
                              custom_fields={360001: "C-1"})
    config = write_config(tmp_path, {"crm": memory_system(crm)}, host={"api": {
        "poll_seconds": 0.5,
        "zendesk": {"signing_secret": {"env": "ZD_WEBHOOK_SECRET"}, "url": zendesk.url,
                    "email": "agent@example.com", "token": {"env": "ZD_API_TOKEN"},
                    "type_tags": {"gdpr_erasure": "erasure", "gdpr_access": "access"},
                    "identifier_fields": {"360001": "customer_id"}}}})
    # the admin's body template, as Zendesk renders it
    body = json.dumps({"ticket": {"id": str(ticket), "tags": "gdpr_erasure identity_verified",
                                  "requester_email": "bob@example.org",
                                  "custom_fields": {"360001": "C-1"}}}).encode()
    server = start_server(config, env=ENV)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            def post(headers: dict[str, str], data: bytes = body) -> httpx.Response:
                return http.post("/v1/webhooks/zendesk", content=data, headers=headers)

            first = _signed(body)
            made = post(first)
            assert made.status_code == 201, made.text
            rid = made.json()["id"]
            assert made.json()["ticket"] == f"ZD-{ticket}"
            seen = ledger_query(config, "SELECT count(*) FROM webhook_signatures")[0][0]
            refused = {
                "forged": post(_signed(body, secret="not-the-secret")),
                "tampered": post(first, body.replace(b"C-1", b"C-2")),
                "stale": post(_signed(body, stamp=_stamp(datetime.now(UTC)
                                                         - timedelta(minutes=10)))),
                "replayed": post(first),
                "unsigned": post({"Content-Type": "application/json"}),
            }
            for name, answer in refused.items():
                want = 403 if name == "replayed" else 401
                assert answer.status_code == want, (name, answer.text)
                detail = answer.json()["detail"]
                assert isinstance(detail, str) and "\n" not in detail, name
            # nothing recorded by a refused call: no request, no signature kept
            assert ledger_query(config, "SELECT count(*) FROM requests")[0][0] == 1
            assert ledger_query(config, "SELECT count(*) FROM webhook_signatures"
                                )[0][0] == seen
            # Zendesk delivering the trigger again (a new signature): the same request
            later = datetime.now(UTC) - timedelta(seconds=30)  # a stamp unlike the first's
            again = post(_signed(body, stamp=_stamp(later)))
            assert (again.status_code, again.json()["id"]) == (200, rid), again.text
            deadline = time.monotonic() + 20
            while not ledger_query(config, "SELECT 1 FROM callbacks WHERE url = ? AND "
                                   "delivered_at IS NOT NULL", f"zendesk:{ticket}"):
                assert time.monotonic() < deadline, "no outcome on the ticket"
                time.sleep(0.1)
    finally:
        log = server.stop()
    assert "bob@example.org" not in log and WEBHOOK_SECRET not in log
    # the person's data is gone from the CRM; Ann's is untouched
    assert set(stored_items(crm)) == {"contact/2"}
    # one internal note with the per-system table and the signed receipts attached
    (note,) = [c for c in store.comments[ticket] if c["author_id"] == 1]
    assert note["public"] is False
    text = note["html_body"]
    assert "<td>crm</td><td>completed</td><td>2</td>" in text and rid in text
    assert "bob@example.org" not in text and "C-1" not in text
    (attached,) = note["attachments"]
    assert attached["file_name"] == f"erasure-receipts-{rid}.json"
    receipts = json.loads(store.files[attached["id"]])
    assert [r["body"]["request"] for r in receipts["receipts"]] == [rid]
    from erasure.heads import verify_export
    from erasure.keys import public_key_from_text

    assert verify_export(receipts, public_key_from_text(receipts["public_key"]),
                         subset=True).ok
    assert {"gdpr_erasure", "identity_verified", "dsr_erasure_completed"} <= set(
        store.tickets[ticket]["tags"])
    # posted once although the update that carried it answered 503 and was retried
    delivered = ledger_query(config, "SELECT attempts, delivered_at FROM callbacks "
                             "WHERE url = ?", f"zendesk:{ticket}")
    assert len(delivered) == 1 and delivered[0][1] is not None
    assert delivered[0][0] == 2 and zendesk.faults_answered["503"] == 1


def test_a_ticket_that_does_not_say_what_to_do_is_refused(tmp_path: Path) -> None:
    """In-process (no server): the mapping's refusals are one line each."""
    from erasure.api.zendesk import WebhookRefused, ZendeskWebhook, to_request
    from erasure.config import ZendeskApiSettings

    settings = ZendeskApiSettings.model_validate({
        "signing_secret": "x" * 16, "subdomain": "acme", "oauth_token": "t",
        "type_tags": {"gdpr_erasure": "erasure", "gdpr_access": "access"},
        "identifier_fields": {"1": "customer_id"}})

    def request(**ticket: object) -> object:
        return to_request(settings, ZendeskWebhook.model_validate(
            {"ticket": {"id": 7, **ticket}}).ticket)

    made = request(tags="GDPR_Erasure identity_verified", requester_email="a@example.org",
                   custom_fields={"1": " C-9 ", "2": "ignored"})
    assert made.subject_request_type == "erasure" and made.verified  # type: ignore[attr-defined]
    assert made.subject_request_id == "zendesk-7-erasure"  # type: ignore[attr-defined]
    assert [(i.identity_type, i.identity_value)
            for i in made.subject_identities] == [  # type: ignore[attr-defined]
        ("email", "a@example.org"), ("customer_id", "C-9")]
    assert not request(tags=["gdpr_access"], requester_email="a@example.org"
                       ).verified  # type: ignore[attr-defined]
    for ticket, why in [({"tags": "other", "requester_email": "a@example.org"},
                         "no request-type tag"),
                        ({"tags": "gdpr_access gdpr_erasure", "requester_email": "a@x.org"},
                         "2 request types"),
                        ({"tags": "gdpr_access"}, "no identifier")]:
        with pytest.raises(WebhookRefused, match=why) as err:
            request(**ticket)
        assert err.value.status == 422
