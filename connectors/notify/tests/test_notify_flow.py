"""The notify connector through the orchestrator (in process, with a clock the tests move)
against the same real SMTP server and webhook receiver: reminders, an SMTP server that
refuses the first tries, signed confirmations, the template sandbox and bad settings."""

from __future__ import annotations

import json
import time

import pytest
from erasure_notify import InvalidSignature, confirm_signed
from erasure_notify.signing import signed_headers
from notify_fixtures import ALICE_PHONE, SECRET, hook, smtp

from erasure import ConfigError, PermanentError
from erasure.models import RequestType
from erasure.orchestrator import RequestSpec

ALICE = (("email", "alice@example.com"),)
DAY = 86400.0


def erasure(orch, *idents: tuple[str, str]) -> str:
    return orch.submit(RequestSpec(RequestType.ERASURE, idents or ALICE, verified=True))


def stage(orch, rid: str, system: str) -> str:
    return {t.system: t.stage for t in orch.ledger.tasks_for([rid])}[system]


def test_reminders_follow_up_the_notice_until_it_is_confirmed(world, smtp_sink, make_orch):
    now = [time.time()]
    orch = make_orch(world.config({"m3st": smtp(smtp_sink)}, confirmation_reminder_days=7),
                     clock=lambda: now[0])
    rid = erasure(orch)
    orch.run()
    (notice,) = smtp_sink.delivered
    now[0] += 3 * DAY
    orch.run()  # not yet due
    assert len(smtp_sink.delivered) == 1
    now[0] += 5 * DAY
    orch.run()
    orch.run()  # the same reminder is never sent twice
    assert len(smtp_sink.delivered) == 2
    first = smtp_sink.delivered[1].message
    assert first["Subject"].startswith("Reminder 1: GDPR Art. 17 notice: erasure")
    assert first["In-Reply-To"] == notice.message["Message-ID"] != first["Message-ID"]
    text = smtp_sink.delivered[1].text
    assert rid in text and ALICE_PHONE in text and "alice@example.com" not in text
    now[0] += 8 * DAY
    orch.run()
    assert smtp_sink.delivered[2].message["Subject"].startswith("Reminder 2: ")
    orch.confirm(rid, "m3st", "M3ST-77")
    now[0] += 30 * DAY
    orch.run()
    assert len(smtp_sink.delivered) == 3  # confirmed: no more reminders
    (body,) = [r["body"] for r in orch.ledger.receipts(rid) if r["body"]["system"] == "m3st"]
    assert body["notice"]["reminders"] == 2 and body["notice"]["confirmation"] == "M3ST-77"


def test_an_smtp_server_that_refuses_the_first_tries(world, smtp_sink, make_orch):
    now = [time.time()]
    orch = make_orch(world.config({"m3st": smtp(smtp_sink)}), clock=lambda: now[0])
    smtp_sink.refuse = 2  # "451 try again later", twice: retried within the call
    rid = erasure(orch)
    orch.run()
    assert smtp_sink.refused == 2 and len(smtp_sink.delivered) == 1
    assert stage(orch, rid, "m3st") == "awaiting_confirmation"
    # a server that keeps refusing: the task waits for a later run, nothing is sent
    smtp_sink.refuse, smtp_sink.refused = 10**6, 0
    bob = erasure(orch, ("email", "bob@example.net"))
    orch.run()
    assert len(smtp_sink.delivered) == 1 and smtp_sink.refused >= 2
    (task,) = [t for t in orch.ledger.tasks_for([bob]) if t.system == "m3st"]
    assert task.stage == "acting" and task.not_before is not None and "451" in task.summary
    smtp_sink.refuse = 0
    now[0] += DAY
    orch.run()
    assert len(smtp_sink.delivered) == 2 and bob in smtp_sink.delivered[1].text
    assert stage(orch, bob, "m3st") == "awaiting_confirmation"


def test_a_signed_confirmation_is_verified_before_it_counts(world, webhook, make_orch):
    orch = make_orch(world.config({"nexbridge": hook(webhook)}))
    rid = erasure(orch)
    other = erasure(orch, ("email", "bob@example.net"))
    orch.run()
    (sent,) = webhook.received  # both requests in one notice
    mid = sent["message_id"]

    def post(body: dict, secret: str = SECRET, tamper: bool = False) -> list[str]:
        raw = json.dumps(body).encode()
        headers = signed_headers(secret, raw)
        if tamper:
            raw = raw.replace(b"NB-", b"XX-")
        return confirm_signed(orch, "nexbridge", headers, raw)

    body = {"type": "erasure.confirmation", "message_id": mid, "requests": [rid],
            "reference": "NB-5521"}
    with pytest.raises(InvalidSignature, match="signature does not match"):
        post(body, tamper=True)
    with pytest.raises(InvalidSignature, match="signature does not match"):
        post(body, secret="another-secret-0123456789")
    with pytest.raises(InvalidSignature, match="did not carry"):
        post({**body, "message_id": "<notice.0@elsewhere>"})
    assert stage(orch, rid, "nexbridge") == "awaiting_confirmation"
    assert post(body) == [rid]
    assert post(body) == []  # posted twice: recorded once
    assert orch.ledger.get_request(rid).outcome == "completed"
    (receipt,) = [r["body"] for r in orch.ledger.receipts(rid)
                  if r["body"]["system"] == "nexbridge"]
    assert receipt["notice"]["confirmation"] == "NB-5521"
    assert stage(orch, other, "nexbridge") == "awaiting_confirmation"


@pytest.mark.parametrize("payload", [
    "{{ notices.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ notices.append(1) }}",
])
def test_the_template_sandbox_holds(world, smtp_sink, make_orch, tmp_path, payload):
    template = tmp_path / "t.j2"
    template.write_text(payload)
    orch = make_orch(world.config({"m3st": smtp(smtp_sink, template=str(template))}))
    from erasure_notify.message import Notice, compile_templates, render

    settings = orch.systems["m3st"].connector().settings
    with pytest.raises(PermanentError, match="sandbox"):
        render(settings, compile_templates(settings), system="m3st", action="delete",
               notices=[Notice("r-1", None, {"phone": (ALICE_PHONE,)})], msg_id="<x@y>")


@pytest.mark.parametrize(("section", "problem"), [
    ({"transport": "smtp", "host": "smtp.m3st.example", "security": "plain",
      "sender": "a@shop.example", "to": "b@m3st.example"}, "only to 127.0.0.1"),
    ({"transport": "smtp", "host": "smtp.m3st.example", "sender": "a@shop.example"},
     "needs to"),
    ({"transport": "webhook", "url": "http://hooks.nexbridge.example/x",
      "secret": {"env": "NEXBRIDGE_SECRET"}}, "https"),
    ({"transport": "webhook", "url": "https://hooks.nexbridge.example/x",
      "secret": "inline-secret-value-123456"}, "env"),
    ({"transport": "webhook", "url": "https://hooks.nexbridge.example/x"}, "needs url and secret"),
    ({"transport": "smtp", "host": "127.0.0.1", "sender": "a@shop.example", "to": "b@x.example",
      "identifiers": []}, "identifiers"),
])
def test_bad_settings_are_named(world, make_orch, section, problem):
    import tomllib

    from clihelpers import write_config

    from erasure.config import parse_config
    from erasure.plugins import PluginHost

    config = write_config(world.root, {"carrier": {"connector": "notify",
                                                   "identifiers": ["phone"], **section}})
    host = PluginHost.load()
    with pytest.raises(ConfigError) as err:
        parse_config(tomllib.loads(config.read_text()), env={"NEXBRIDGE_SECRET": SECRET},
                     known_connectors={n: host.registry.get(n) for n in host.registry.names()})
    assert any(p.startswith("systems.carrier") and problem in p for p in err.value.problems), \
        err.value.problems


def test_a_rectification_tells_the_carrier_the_correct_phone(world, smtp_sink, make_orch):
    orch = make_orch(world.config({"m3st": smtp(smtp_sink)}))
    rid = orch.submit(RequestSpec(RequestType.RECTIFICATION, ALICE, verified=True,
                                  corrections=(("phone", "+447700900999"),
                                               ("email", "alice@new.example"))))
    orch.run()
    (told,) = smtp_sink.delivered
    assert told.message["Subject"] == "GDPR Art. 16 notice: rectification of 1 data subject"
    assert f"phone: {ALICE_PHONE}" in told.text and "correct phone: +447700900999" in told.text
    assert "alice@" not in told.raw.decode()  # the carrier never had the email
    assert stage(orch, rid, "m3st") == "awaiting_confirmation"


def test_systems_check_reaches_each_transport_without_sending(world, smtp_sink, webhook,
                                                              make_orch):
    from erasure_notify.fakes import free_port

    orch = make_orch(world.config({
        "m3st": smtp(smtp_sink), "nexbridge": hook(webhook),
        "aql": smtp(smtp_sink, port=free_port())}))  # nobody listens there
    problems = orch.check_systems()
    assert problems["m3st"] is None and problems["nexbridge"] is None
    assert "not reachable" in (problems["aql"] or "")
    assert smtp_sink.delivered == [] and webhook.received == []


def test_a_webhook_that_hangs_up_after_taking_the_notice_is_not_sent_it_again(
        world, webhook, make_orch):
    webhook.hang_up = 1  # stored, then the connection closed without an answer
    orch = make_orch(world.config({"nexbridge": hook(webhook)}))
    rid = erasure(orch)
    orch.run()
    orch.run()
    assert len(webhook.received) == 1 and webhook.repeats == 0, "sent twice"
    assert stage(orch, rid, "nexbridge") == "awaiting_confirmation"
    (task,) = [t for t in orch.ledger.tasks_for([rid]) if t.system == "nexbridge"]
    assert webhook.received[0]["message_id"] in task.summary  # the receipt will name it
