"""The HTTP API's intake in-process (no server, seconds): what makes a repeat the same
request, what a submission may carry (callback URLs, times) and the wording of refusals.
The service is the one ``erasure serve`` runs; only HTTP is left out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from erasure.api.schemas import SubmitRequest
from erasure.api.service import ApiError, ApiService
from erasure.orchestrator import Orchestrator

ZD_SECRET = "zendesk-signing-secret-0123"


def _body(srid: str, email: str = "bob@example.org", kind: str = "erasure",
          **extra: Any) -> SubmitRequest:
    return SubmitRequest.model_validate({
        "subject_request_id": srid, "subject_request_type": kind,
        "subject_identities": [{"identity_type": "email", "identity_value": email}],
        "verified": True, **extra})


@pytest.fixture()
def orch(make_orch: Callable[..., Orchestrator], monkeypatch: pytest.MonkeyPatch
         ) -> Orchestrator:
    monkeypatch.setenv("T_ZD_SECRET", ZD_SECRET)
    monkeypatch.setenv("T_ZD_TOKEN", "zendesk-api-token")
    return make_orch({"erasure": {"api": {"zendesk": {
        "signing_secret": {"env": "T_ZD_SECRET"}, "subdomain": "acme",
        "oauth_token": {"env": "T_ZD_TOKEN"},
        "type_tags": {"gdpr_erasure": "erasure", "gdpr_access": "access"},
        "verified_tag": "identity_verified"}}},
        "systems": {"crm": {"connector": "memory"}}})


def _token(orch: Orchestrator) -> Any:
    from erasure.api.tokens import create_token

    token_id, _ = create_token(orch.ledger, ["submit"], None)
    return orch.ledger.token(token_id)


def _refused(call: Callable[[], Any], status: int = 409) -> str:
    with pytest.raises(ApiError) as err:
        call()
    assert err.value.status == status, err.value.message
    return err.value.message


def test_a_key_reused_for_another_request_is_refused_not_answered_with_the_first(
        orch: Orchestrator) -> None:
    service = ApiService(orch)
    mine, theirs = _token(orch), _token(orch)
    first, new = service.submit(_body("k-1"), None, mine)
    assert new
    # the same request again (a retry): the first one, 200
    again, new = service.submit(_body("k-1"), None, mine)
    assert (again.id, new) == (first.id, False)
    # the same subject_request_id for another type or other identities: 409 naming it
    why = _refused(lambda: service.submit(_body("k-1", kind="access"), None, mine))
    assert first.id in why and "subject_request_id 'k-1'" in why and "erasure" in why
    _refused(lambda: service.submit(_body("k-1", "ann@example.org"), None, mine))
    # an Idempotency-Key reused for another subject_request_id
    keyed, _ = service.submit(_body("k-2"), "key-9", mine)
    why = _refused(lambda: service.submit(_body("k-3"), "key-9", mine))
    assert "Idempotency-Key" in why and keyed.id in why
    # another token's key: refused without showing its request
    for key, body in ((None, _body("k-1")), ("key-9", _body("k-2"))):
        why = _refused(lambda key=key, body=body: service.submit(body, key, theirs))
        assert "another token" in why and first.id not in why and keyed.id not in why
    assert orch.ledger.count_requests("open") == 2


def _signed(body: bytes) -> dict[str, str]:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    mac = hmac.new(ZD_SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {"X-Zendesk-Webhook-Signature": base64.b64encode(mac).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp}


def _ticket(tags: str, email: str = "bob@example.org", ticket: int = 1003) -> bytes:
    return json.dumps({"ticket": {"id": str(ticket), "tags": tags,
                                  "requester_email": email}}).encode()


def test_a_ticket_asking_for_erasure_after_access_gets_an_erasure_request(
        orch: Orchestrator) -> None:
    """Once per ticket and type: the erasure asked for on a ticket that had an access
    request is recorded (not answered with the access request)."""
    service = ApiService(orch)
    send = lambda data: service.zendesk(_signed(data), data)  # noqa: E731
    access, new = send(_ticket("gdpr_access identity_verified"))
    assert new and access.subject_request_type == "access"
    erasure, new = send(_ticket("gdpr_erasure identity_verified erasure_submitted"))
    assert new and erasure.subject_request_type == "erasure" and erasure.id != access.id
    assert erasure.ticket == access.ticket == "ZD-1003"
    # Zendesk firing the trigger again: the same request
    again, new = send(_ticket("gdpr_erasure identity_verified"))
    assert (again.id, new) == (erasure.id, False)
    # the same ticket and type for someone else: refused, naming the request it has
    why = _refused(lambda: send(_ticket("gdpr_erasure identity_verified",
                                        "ann@example.org")))
    assert why.startswith(f"ticket ZD-1003 already has an erasure request {erasure.id}")
    assert "ann@example.org" not in why
    assert sorted(r.type for r in orch.ledger.list_requests()) == ["access", "erasure"]


@pytest.fixture()
def zendesk_orch(make_orch: Callable[..., Orchestrator], monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[tuple[Orchestrator, Any]]:
    """An orchestrator whose Zendesk trigger posts notes to a local Zendesk fake."""
    pytest.importorskip("erasure_zendesk")
    from erasure_zendesk.testing.server import FakeZendesk

    monkeypatch.setenv("T_ZD_SECRET", ZD_SECRET)
    monkeypatch.setenv("T_ZD_TOKEN", "zendesk-api-token")
    with FakeZendesk(email="agent@example.com", token="zendesk-api-token") as fake:
        orch = make_orch({"erasure": {"api": {"zendesk": {
            "signing_secret": {"env": "T_ZD_SECRET"}, "url": fake.url,
            "email": "agent@example.com", "token": {"env": "T_ZD_TOKEN"},
            "type_tags": {"gdpr_erasure": "erasure", "gdpr_access": "access"}}}},
            "systems": {"crm": {"connector": "memory"}}})
        yield orch, fake


def test_an_access_request_ends_with_a_tag_that_says_access_not_erasure(
        zendesk_orch: tuple[Orchestrator, Any]) -> None:
    orch, fake = zendesk_orch
    bob = fake.store.add_user("Bob", "bob@example.org")
    ticket = fake.store.add_ticket(bob, "What do you hold on me?", [(bob, "Tell me.")])
    data = _ticket("gdpr_access identity_verified", ticket=ticket)
    made, _ = ApiService(orch).zendesk(_signed(data), data)
    orch.run()
    assert orch.callback_sender().send_due() >= 1
    tags = set(fake.store.tickets[ticket]["tags"])
    assert "dsr_access_completed" in tags and not any("erasure" in t for t in tags), tags
    (note,) = fake.store.comments[ticket][1:]
    assert f"The access request {made.id} ended" in note["html_body"]


def test_a_note_for_a_ticket_that_does_not_exist_is_given_up_not_retried(
        zendesk_orch: tuple[Orchestrator, Any]) -> None:
    from sqlalchemy import select

    from erasure.ledger_tables import callbacks_t

    orch, _fake = zendesk_orch
    data = _ticket("gdpr_access identity_verified", ticket=424242)  # not in Zendesk
    ApiService(orch).zendesk(_signed(data), data)
    orch.run()
    assert orch.callback_sender().send_due() == 0
    with orch.ledger.engine.connect() as conn:
        (row,) = conn.execute(select(callbacks_t).where(
            callbacks_t.c.url == "zendesk:424242")).all()
    # one attempt, then given up with the reason on its row (a later pass sends nothing)
    assert row.attempts == 1 and row.failed_at is not None
    assert row.last_error.startswith("zendesk: HTTP 404 (no such ticket)")


def test_a_blocked_task_is_told_and_shown_blocked_without_its_give_up_time(
        make_orch: Callable[..., Orchestrator], tmp_path: Any) -> None:
    from sqlalchemy import select

    from erasure.ledger_tables import callbacks_t

    missing = tmp_path / "not-made-yet" / "archive.json"  # an operator's mistake: blocked
    orch = make_orch({"systems": {"archive": {"connector": "memory", "path": str(missing)}}})
    service = ApiService(orch)
    made, _ = service.submit(_body("blk-1", status_callback_urls=["http://127.0.0.1:9/cb"],
                                   status_callback_secret="s" * 16), None)
    orch.run()
    with orch.ledger.engine.connect() as conn:
        told = [json.loads(r.body) for r in conn.execute(select(callbacks_t.c.body).where(
            callbacks_t.c.request_id == made.id))]
    assert [(c["system"], c["state"]) for c in told if c["event"] == "task_changed"
            ] == [("archive", "blocked")]
    (shown,) = service.status(made.id).systems
    assert (shown.state, shown.not_before) == ("blocked", None)
    assert shown.waits is not None and "erasure retry" in shown.waits
    assert "store folder does not exist" in shown.waits


def test_the_docs_first_submission_is_taken_by_the_configuration_the_docs_show(
        make_orch: Callable[..., Orchestrator], tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/api.md's first POST /v1/requests body, copied literally, is recorded under its
    first configuration (paths moved to a temporary folder): 201, not a 422."""
    import re
    import tomllib
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    config = tomllib.loads(re.findall(r"```toml\n(.*?)```", text, re.S)[0])
    post = text.split("### `POST /v1/requests`", 1)[1]
    body = json.loads(re.findall(r"```json\n(.*?)```", post, re.S)[0])
    config["erasure"]["state_dir"] = str(tmp_path / "state")
    for system in config["systems"].values():
        system["path"] = str(tmp_path / Path(system["path"]).name)
    monkeypatch.setenv("ERASURE_CALLBACK_SECRET", "docs-callback-secret-0123")
    made, new = ApiService(make_orch(config)).submit(SubmitRequest.model_validate(body), None)
    assert new and made.subject_request_type == body["subject_request_type"]


def test_callback_urls_with_credentials_or_to_metadata_addresses_are_refused(
        orch: Orchestrator) -> None:
    service = ApiService(orch)
    secret = {"status_callback_secret": "s" * 16}
    for url, why in [("http://user:pw@127.0.0.1:9/cb", "user or password"),
                     ("https://hooks.example.com/cb#frag", "fragment"),
                     ("http://169.254.169.254/latest/meta-data/", "link-local"),
                     ("http://[fe80::1]/cb", "link-local"),
                     ("http://[::ffff:169.254.169.254]/cb", "link-local"),
                     ("ftp://hooks.example.com/cb", "http(s) URL")]:
        body = _body("cb-bad", status_callback_urls=["http://127.0.0.1:9/ok", url], **secret)
        message = _refused(lambda body=body: service.submit(body, None), 422)
        assert message.startswith("status_callback_urls[1]: ") and why in message, message
    assert orch.ledger.count_requests() == 0


def test_callback_urls_are_forgotten_when_the_request_ends(orch: Orchestrator) -> None:
    """A URL's path and query may name the person: loopback receivers still get every
    callback, and once the request ended and its callbacks went, the ledger keeps only
    where they went."""
    from apihelpers import CallbackReceiver
    from sqlalchemy import select

    from erasure.ledger_tables import api_requests_t, callbacks_t

    receiver = CallbackReceiver(b"s" * 16).start()
    try:
        url = f"http://127.0.0.1:{receiver.port}/cb?email=bob@example.org"
        made, _ = ApiService(orch).submit(_body(
            "cb-purge", status_callback_urls=[url], status_callback_secret="s" * 16), None)
        orch.run()
        assert orch.callback_sender().send_due() >= 2
    finally:
        receiver.stop()
    assert receiver.refused == 0
    assert {c["event"] for c in receiver.received} == {"task_changed", "request_finished"}
    with orch.ledger.engine.connect() as conn:
        kept = conn.execute(select(api_requests_t.c.callback_urls).where(
            api_requests_t.c.request_id == made.id)).scalar_one()
        urls = {r.url for r in conn.execute(select(callbacks_t.c.url).where(
            callbacks_t.c.request_id == made.id))}
    assert kept == "[]" and urls == {f"http://127.0.0.1:{receiver.port}/..."}


def test_a_queued_callback_to_a_metadata_address_is_never_sent(orch: Orchestrator) -> None:
    """Checked again when sending (a URL recorded before the check, or a name that now
    resolves there): given up at once, nothing posted."""
    from sqlalchemy import select

    from erasure.ledger_tables import callbacks_t

    made, _ = ApiService(orch).submit(_body("cb-old", status_callback_secret="s" * 16), None)
    with orch.ledger.tx() as conn:
        from erasure.ledger_tables import api_requests_t

        conn.execute(api_requests_t.update().where(api_requests_t.c.request_id == made.id)
                     .values(callback_urls=json.dumps(["http://169.254.169.254/x"])))
    orch.run()
    assert orch.callback_sender().send_due() == 0
    with orch.ledger.engine.connect() as conn:
        rows = conn.execute(select(callbacks_t).where(
            callbacks_t.c.request_id == made.id)).all()
    assert rows and all(r.attempts == 1 and r.failed_at is not None
                        and "link-local" in r.last_error for r in rows)


def test_refusals_name_the_api_fields_not_the_cli_options(orch: Orchestrator) -> None:
    from datetime import timedelta

    from pydantic import ValidationError

    service = ApiService(orch)
    why = _refused(lambda: service.submit(_body("w-1", verified=False), None), 422)
    assert '"verified": true' in why and "--" not in why, why
    why = _refused(lambda: service.submit(_body("w-2", ticket="free text!"), None), 422)
    assert why.startswith("ticket must be a reference") and "--" not in why, why
    # a secret too short is counted in characters; a time ahead of the clock is refused
    for extra, want in [({"status_callback_secret": "short"}, "16 to 200 characters"),
                        ({"submitted_time": "2099-01-01T00:00:00Z"}, "in the future"),
                        # no instant in UTC (before year 1 there): a 500 when stored
                        ({"submitted_time": "0001-01-01T13:59:59+14:00"}, "before 0001")]:
        with pytest.raises(ValidationError) as err:
            _body("w-3", **extra)
        (problem,) = err.value.errors()
        assert want in problem["msg"] and "items" not in problem["msg"], problem
    skewed = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    assert service.submit(_body("w-4", submitted_time=skewed), None)[1]  # clocks drift
    # the first instant there is, in another offset: stored as the UTC time it is
    first, _ = service.submit(_body("w-5", submitted_time="0001-01-01T14:00:00+14:00"), None)
    assert first.received_time == datetime(1, 1, 1, tzinfo=UTC)
    # the Zendesk webhook's refusals name the ticket's parts and tags
    data = _ticket("gdpr_erasure")
    why = _refused(lambda: service.zendesk(_signed(data), data), 422)
    assert "tag the ticket with verified_tag" in why and "--" not in why, why
    data = _ticket("gdpr_erasure identity_verified", email="not an email")
    why = _refused(lambda: service.zendesk(_signed(data), data), 422)
    assert why.startswith("ticket.requester_email: email: ") and "Value error" not in why
    ahead = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    mac = hmac.new(ZD_SECRET.encode(), ahead.encode() + data, hashlib.sha256).digest()
    why = _refused(lambda: service.zendesk({
        "X-Zendesk-Webhook-Signature": base64.b64encode(mac).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": ahead}, data), 401)
    assert "from the future" in why and "stale" not in why


def test_a_custom_field_the_config_does_not_map_is_logged_without_its_value(
        orch: Orchestrator, caplog: pytest.LogCaptureFixture) -> None:
    data = json.dumps({"ticket": {"id": "1011", "tags": "gdpr_access identity_verified",
                                  "requester_email": "bob@example.org",
                                  "custom_fields": {"999": "C-4242"}}}).encode()
    with caplog.at_level("WARNING", logger="erasure.api.zendesk"):
        assert ApiService(orch).zendesk(_signed(data), data)[1]
    (record,) = [r for r in caplog.records if "identifier_fields" in r.getMessage()]
    assert "999" in record.getMessage() and "C-4242" not in record.getMessage()


def _phone_body(srid: str, phone: str) -> SubmitRequest:
    return SubmitRequest.model_validate({
        "subject_request_id": srid, "subject_request_type": "erasure", "verified": True,
        "subject_identities": [{"identity_type": "phone", "identity_value": phone}]})


def test_a_phone_in_national_form_is_read_with_the_configured_region(
        make_orch: Callable[..., Orchestrator]) -> None:
    orch = make_orch({"erasure": {"default_phone_region": "GB"},
                      "systems": {"crm": {"connector": "memory", "store": "api-phones"}}})
    crm = orch.systems["crm"].connector()
    crm.seed({"c/1": ("contact", {"phone": "+441130000002"}),
              "c/2": ("contact", {"phone": "+441130000003"})})
    service = ApiService(orch)
    # as a person writes it on a ticket: the same request as the international form
    status, new = service.submit(_phone_body("p-1", "0113 000 0002"), None)
    assert new
    again, new = service.submit(_phone_body("p-1", "+44 113 000 0002"), None)
    assert (again.id, new) == (status.id, False)
    orch.run()
    # found by the number as written; a phone alone is held for review, never deleted
    (receipt,) = service.receipts(status.id)["receipts"]
    assert receipt["body"]["counts"]["found"] == 1
    assert receipt["body"]["counts"]["review"] == 1
    assert crm.count() == 2


def test_a_phone_in_national_form_without_a_region_is_refused_naming_the_item(
        orch: Orchestrator) -> None:
    service = ApiService(orch)
    body = SubmitRequest.model_validate({
        "subject_request_id": "p-2", "subject_request_type": "erasure", "verified": True,
        "subject_identities": [{"identity_type": "email", "identity_value": "bob@example.org"},
                               {"identity_type": "phone", "identity_value": "0113 000 0002"}]})
    with pytest.raises(ApiError) as err:
        service.submit(body, None)
    assert err.value.status == 422
    assert err.value.loc == ("body", "subject_identities", 1, "identity_value")
    assert "default_phone_region" in err.value.message and "0113" not in err.value.message
    assert orch.ledger.count_requests("open") == 0  # nothing recorded
