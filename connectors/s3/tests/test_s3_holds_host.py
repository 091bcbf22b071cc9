"""A legal hold through the real host: the held object is RETAINED with its reason in
`erasure status` while the request is open, checked again by later runs, erased once the
hold is released; never released, the request ends `retained` at its give-up time with the
reason on the receipt and in the command's table."""

from __future__ import annotations

import calendar
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from rich.console import Console
from s3_fixtures import KEY_ID, REGION, SECRET, S3Server, all_versions, make_bucket

from erasure import PluginHost, RequestType, cli_common
from erasure.config import parse_config
from erasure.orchestrator import Orchestrator, RequestSpec
from erasure.reports import status_report
from erasure.tables import receipts_table, tasks_table

HOUR = 3600.0


@pytest.fixture
def host(s3: S3Server, tmp_path: Any) -> Iterator[tuple[Orchestrator, list[float], str]]:
    """The real host with a system ``files`` on a locked bucket; ``clock[0]`` is its time."""
    bucket = make_bucket(s3.client(), lock=True)
    clock = [time.time()]
    plugins = PluginHost.load()
    config = parse_config({
        "erasure": {"state_dir": str(tmp_path / "state")},
        "systems": {"files": {
            "connector": "s3", "endpoint_url": s3.url, "region": REGION,
            "access_key_id": {"env": "S3_TEST_KEY_ID"},
            "secret_access_key": {"env": "S3_TEST_SECRET"},
            "rules": [{"bucket": bucket, "prefix": "customers/", "content": "none",
                       "key_template": "customers/{customer_id}/"}]}},
        "id_spaces": {"customer": {"type": "customer_id", "systems": ["files"]}}},
        known_connectors={n: plugins.registry.get(n) for n in plugins.registry.names()},
        env={"S3_TEST_KEY_ID": KEY_ID, "S3_TEST_SECRET": SECRET})
    orch = Orchestrator(config, plugins, sleep=lambda s: None, clock=lambda: clock[0])
    try:
        yield orch, clock, bucket
    finally:
        orch.close()


def erase(orch: Orchestrator, customer: str) -> str:
    return orch.submit(RequestSpec(RequestType.ERASURE, (("customer_id", customer),),
                                   verified=True))


def text(table: Any) -> str:
    console = Console(file=io.StringIO(), width=250, no_color=True)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_held_object_is_retained_named_rechecked_and_erased_once_released(
        s3: S3Server, host: tuple[Orchestrator, list[float], str]) -> None:
    orch, clock, bucket = host
    client = s3.client()
    for customer in ("800123", "800456"):  # Bob's hold is released later; Carol's never
        for name in ("held.json", "free.json"):
            client.put_object(Bucket=bucket, Key=f"customers/{customer}/{name}", Body=b"{}")
        held = client.list_object_versions(Bucket=bucket,
                                           Prefix=f"customers/{customer}/held.json")
        client.put_object_legal_hold(Bucket=bucket, Key=f"customers/{customer}/held.json",
                                     VersionId=held["Versions"][0]["VersionId"],
                                     LegalHold={"Status": "ON"})
    bob, carol = erase(orch, "800123"), erase(orch, "800456")

    summary = orch.run()
    reason = "retained: legal hold on 1 version(s) until released"
    assert sorted(summary.held) == sorted([(bob, "files", reason), (carol, "files", reason)])
    with cli_common.err.capture() as said, pytest.raises(typer.Exit):
        cli_common._summary_exit(summary)  # what `erasure erase` / `run` print
    assert f"{bob} files: {reason}; checked again by later runs" in said.get()
    for rid in (bob, carol):
        assert orch.ledger.get_request(rid).status != "done", "open while the hold may lift"
    assert [k for k, _, _ in all_versions(client, bucket, "customers/800123/")] == [
        "customers/800123/held.json"], "what is not held is erased at once"
    report = status_report(orch.ledger, finished_too=False)
    waiting = {t["request"]: t for t in report["tasks"]}
    assert waiting[bob]["held"] == [reason] and waiting[bob]["stage"] == "acting"
    assert reason in (waiting[bob]["waits_for"] or "")
    due = {r.id: r.due_at for r in orch.ledger.list_requests(open_only=True)}
    assert reason in text(tasks_table(orch.ledger.open_tasks(), due))

    version = client.list_object_versions(Bucket=bucket, Prefix="customers/800123/held.json")
    client.put_object_legal_hold(Bucket=bucket, Key="customers/800123/held.json",
                                 VersionId=version["Versions"][0]["VersionId"],
                                 LegalHold={"Status": "OFF"})
    orch.run()  # not due yet: a hold is checked again a day later
    assert orch.ledger.get_request(bob).status != "done"
    clock[0] += 25 * HOUR
    orch.run()
    assert orch.ledger.get_request(bob).status == "done"
    (body,) = [r["body"] for r in orch.ledger.receipts(bob)]
    assert body["outcome"] == "completed" and body["not_acted"] == []
    assert body["verification"] == {"performed": True, "ok": True}
    assert all_versions(client, bucket, "customers/800123/") == []

    # Carol's hold stays: at the request's give-up time it ends retained, named.
    assert orch.ledger.get_request(carol).status != "done"
    row = orch.ledger.get_request(carol)
    clock[0] = calendar.timegm(row.due_at.timetuple()) - 47 * HOUR
    orch.run()
    assert orch.ledger.get_request(carol).status == "done"
    (body,) = [r["body"] for r in orch.ledger.receipts(carol)]
    assert body["outcome"] == "retained" and body["not_acted"] == [reason]
    assert body["counts"]["retained"] == 1 and body["counts"]["residue"] == 0
    assert reason in text(receipts_table(orch.ledger.receipts(carol)))
    assert [k for k, _, _ in all_versions(client, bucket, "customers/800456/")] == [
        "customers/800456/held.json"]
