"""Processors without an API told through a real SMTP server (aiosmtpd on 127.0.0.1) and a
webhook receiver, driven by the real ``erasure`` command line: what they are told, to whom,
only the identifier types they receive, batching, the confirmation flow, and a notice that
is never sent twice, not even when the process dies between sending and recording."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.error
import urllib.request
from datetime import datetime

from clihelpers import (
    describe,
    error_lines,
    receipt_bodies,
    run_cli,
    run_many,
    start_cli,
    table_row,
)
from notify_fixtures import ALICE_NOT_PHONE, ALICE_PHONE, BOB_PHONE, ENV, SECRET, hook, smtp

RID = re.compile(r"\br-[0-9a-f]{16}\b")
TASKS = ("request", "system", "state", "next try (UTC)", "last error")
ALICE = ("--email", "alice@example.com", "--verified")


def erase(config, *args: str) -> str:
    proc = run_cli("erase", *args, config=config, env=ENV)
    assert proc.returncode == 0, describe(proc)
    assert "some systems finish later" in proc.stdout, describe(proc)
    (rid,) = set(RID.findall(proc.stdout))
    return rid


def one_line_error(proc, needle: str) -> None:
    assert proc.returncode == 2, describe(proc)
    assert len(error_lines(proc)) == 1 and needle in proc.stderr, describe(proc)


def test_each_processor_is_told_only_what_it_received_and_confirms(world, smtp_sink):
    config = world.config({
        "m3st": smtp(smtp_sink, "phone", to=["dpo@m3st.example", "noc@m3st.example"],
                     controller="Shop Ltd"),
        "ukfast": smtp(smtp_sink, "email", "customer_id", to="dc@ukfast.example")})
    rid = erase(config, *ALICE, "--ticket", "T-19")
    by_to = {tuple(d.rcpt_tos): d for d in smtp_sink.delivered}
    assert set(by_to) == {("dpo@m3st.example", "noc@m3st.example"), ("dc@ukfast.example",)}
    carrier = by_to[("dpo@m3st.example", "noc@m3st.example")]
    assert receipt_bodies(config) == []  # nothing ended yet: no receipt
    assert carrier.mail_from == "privacy@shop.example"
    msg = carrier.message
    assert msg["Subject"] == "GDPR Art. 17 notice: erasure of 1 data subject"
    assert msg["To"] == "dpo@m3st.example, noc@m3st.example"
    text = carrier.text
    assert f"Our reference: {rid}" in text and "Shop Ltd" in text
    # the phone on Alice's own contact (phones are weak for matching, but it is hers)
    assert f"phone: {ALICE_PHONE}" in text
    raw = carrier.raw.decode()
    for other in (*ALICE_NOT_PHONE, BOB_PHONE, "Bob"):
        assert other not in raw, f"{other!r} was sent to a carrier"
    data_centre = by_to[("dc@ukfast.example",)].text
    assert "alice@example.com" in data_centre and "C-1001" in data_centre
    assert ALICE_PHONE not in by_to[("dc@ukfast.example",)].raw.decode()
    # status: both wait for their processor; the due date is the request's. A
    # confirmation from an unknown processor is one line and exit 2, nothing recorded.
    status, unknown = run_many(("status",), ("confirm", rid, "vodafone", "--reference", "X"),
                               config=config, env=ENV)
    row = table_row(status.stdout, ("request", "ticket", "type", "status", "received", "due",
                                    "days left"), rid)
    assert f"Due: {row['due']}" in text
    assert table_row(status.stdout, TASKS, rid)["state"] == "awaiting confirmation"
    one_line_error(unknown, "no system 'vodafone'")
    done = run_cli("confirm", rid, "m3st", "--reference", "M3ST-4471", config=config, env=ENV)
    assert done.returncode == 0 and "request ended" not in done.stdout, describe(done)
    done = run_cli("confirm", rid, "ukfast", "--reference", "UKF-88", config=config, env=ENV)
    assert done.returncode == 0 and "request ended completed" in done.stdout, describe(done)
    bodies = {b["system"]: b for b in receipt_bodies(config, rid)}
    notice = bodies["m3st"]["notice"]
    assert notice["confirmation"] == "M3ST-4471" and notice["messages"] == [msg["Message-ID"]]
    assert datetime.fromisoformat(notice["sent_at"]) <= datetime.fromisoformat(
        notice["confirmed_at"])
    assert bodies["m3st"]["outcome"] == bodies["ukfast"]["outcome"] == "completed"
    receipts = json.dumps(bodies)
    for value in (*ALICE_NOT_PHONE, ALICE_PHONE):
        assert value not in receipts, "an identifier sent is on a receipt"
    assert len(smtp_sink.delivered) == 2


def test_one_message_per_processor_per_run_or_one_per_request(world, smtp_sink, tmp_path):
    config = world.config({"m3st": smtp(smtp_sink, to="batch@m3st.example"),
                           "aql": smtp(smtp_sink, to="each@aql.example", batch="request")})
    rows = ["type,email,phone,verified",
            "erasure,alice@example.com,,yes",
            "erasure,bob@example.net,,yes",
            f"restriction,,{'+447700900789'},yes"]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    made = run_cli("request", "import", str(tmp_path / "r.csv"), config=config, env=ENV)
    assert made.returncode == 0, describe(made)
    rids = RID.findall(made.stdout)
    assert len(rids) == 3, describe(made)
    proc = run_cli("run", config=config, env=ENV)
    assert proc.returncode == 0, describe(proc)
    batched = [d for d in smtp_sink.delivered if d.rcpt_tos == ["batch@m3st.example"]]
    single = [d for d in smtp_sink.delivered if d.rcpt_tos == ["each@aql.example"]]
    # one call carries one action: the erasures in one message, the restriction in another
    assert sorted(d.message["Subject"] for d in batched) == [
        "GDPR Art. 17 notice: erasure of 2 data subjects",
        "GDPR Art. 18 notice: restriction of 1 data subject"]
    erasures = next(d.text for d in batched if "erasure" in d.message["Subject"])
    assert rids[0] in erasures and rids[1] in erasures and rids[2] not in erasures
    assert ALICE_PHONE in erasures and BOB_PHONE in erasures
    assert len(single) == 3
    for rid, d in zip(rids, sorted(single, key=lambda d: [r in d.text for r in rids],
                                   reverse=True), strict=True):
        assert [r for r in rids if r in d.text] == [rid]


def test_a_signed_webhook_the_receiver_verifies_and_a_tampered_one_it_refuses(world, webhook):
    webhook.fail = 2  # the processor's endpoint answers 503 twice: retried, delivered once
    config = world.config({"nexbridge": hook(webhook)})
    rid = erase(config, *ALICE)
    assert webhook.rejected == [] and webhook.failed == 2 and webhook.repeats == 0
    (body,) = webhook.received
    assert body["type"] == "erasure.notice" and body["action"] == "erasure"
    assert [n["reference"] for n in body["notices"]] == [rid]
    assert body["notices"][0]["identifiers"] == {"phone": [ALICE_PHONE]}
    for value in ALICE_NOT_PHONE:
        assert value not in json.dumps(body)
    # the same body changed by one value, sent with the original signature: refused
    raw = json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
    from erasure_notify.signing import signed_headers

    headers = signed_headers(SECRET, raw)
    tampered = raw.replace(ALICE_PHONE.encode(), BOB_PHONE.encode())
    for data, hdrs, status in ((tampered, headers, 401),
                               (raw, {**headers, "X-Erasure-Timestamp": "1000000000"}, 401),
                               (raw, headers, 202)):
        req = urllib.request.Request(webhook.url, data=data, method="POST", headers={
            **hdrs, "X-Erasure-Message-Id": "<probe@test>"})
        try:
            got = urllib.request.urlopen(req, timeout=10).status
        except urllib.error.HTTPError as exc:
            got = exc.code
        assert got == status
    assert webhook.rejected == ["bad signature", "stale or missing timestamp"]


def test_a_run_killed_between_send_and_record_does_not_send_twice(world, smtp_sink):
    config = world.config({"m3st": smtp(smtp_sink)})
    run = start_cli("erase", *ALICE, config=config, env=ENV)
    # The server has the message; the sender dies before it hears "250" (the worst
    # moment: it cannot know whether the message arrived) and before any ledger write.
    smtp_sink.on_data = lambda _d: os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert len(smtp_sink.delivered) == 1
    smtp_sink.on_data = None
    again = run_cli("run", config=config, env=ENV)  # resumes the dead run's request
    assert again.returncode == 0, describe(again)
    assert len(smtp_sink.delivered) == 1, "the notice went out twice"
    (rid,) = set(RID.findall(smtp_sink.delivered[0].text))
    # awaiting confirmation (confirm refuses any other state), and then ends
    done = run_cli("confirm", rid, "m3st", "--reference", "M-1", config=config, env=ENV)
    assert "request ended completed" in done.stdout, describe(done)
    notice = receipt_bodies(config, rid)[-1]["notice"]
    assert notice["messages"] == [smtp_sink.delivered[0].message["Message-ID"]]


def test_a_template_that_reaches_outside_its_sandbox_sends_nothing(world, smtp_sink, tmp_path):
    evil = tmp_path / "evil.txt.j2"
    evil.write_text("{{ notices.__class__.__mro__[1].__subclasses__() }}\n")
    config = world.config({"m3st": smtp(smtp_sink, template=str(evil))})
    proc = run_cli("erase", *ALICE, config=config, env=ENV)  # valid syntax: not exit 2
    assert proc.returncode == 1, describe(proc)
    assert smtp_sink.delivered == []
    (body,) = [b for b in receipt_bodies(config) if b["system"] == "m3st"]
    assert body["outcome"] == "failed"
    assert any("outside its sandbox" in e for e in body["errors"]), body["errors"]
    assert not any("verification" in e for e in body["errors"]), "a notice is never searched"
    broken = tmp_path / "broken.txt.j2"
    broken.write_text("{% for n in notices %}never closed\n")
    config = world.config({"m3st": smtp(smtp_sink, template=str(broken))})
    one_line_error(run_cli("config", "check", config=config, env=ENV), "systems.m3st")
