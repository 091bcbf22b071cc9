"""The fake Zendesk API on 127.0.0.1 (one per test: it starts in milliseconds), connectors
and orchestrators pointed at it, and a host-like driver for deletes that answer PENDING
(the contract suite polls PENDING items itself)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from erasure_zendesk import ZendeskConnector, ZendeskSettings
from erasure_zendesk.testing import FakeZendesk

from erasure import Finding, ItemOutcome, ItemStatus
from erasure.config import parse_config
from erasure.connector import _CURRENT, CallContext
from erasure.orchestrator import Orchestrator
from erasure.plugins import PluginHost

EMAIL = "agent@example.com"
# distinctive, so the contract suite's repr check would see it if it leaked
TOKEN = "zendesk-api-token-do-not-print"


@pytest.fixture
def fake() -> Iterator[FakeZendesk]:
    server = FakeZendesk(email=EMAIL, token=TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


def settings(fake: FakeZendesk, **extra: Any) -> ZendeskSettings:
    return ZendeskSettings.model_validate({"url": fake.url, "email": EMAIL, "token": TOKEN,
                                           **extra})


def connector(fake: FakeZendesk, **extra: Any) -> ZendeskConnector:
    return ZendeskConnector("helpdesk", settings(fake, **extra))


def in_call(action: str, subjects: Sequence[str], fn: Callable[[], Any],
            keys: str = "key") -> Any:
    """Run ``fn`` inside a host call context (idempotency key per subject)."""
    ctx = CallContext("helpdesk", action, time.monotonic() + 60,
                      {s: f"{keys}:{s}:{action}" for s in subjects})
    token = _CURRENT.set(ctx)
    try:
        return fn()
    finally:
        _CURRENT.reset(token)


def delete_and_poll(conn: ZendeskConnector, findings: Sequence[Finding], *,
                    max_polls: int = 10) -> list[ItemOutcome]:
    """What the host does: delete, then poll the PENDING items until they end."""
    subjects = sorted({f.subject for f in findings})
    outcomes = in_call("delete", subjects, lambda: list(conn.delete(findings)))
    for _ in range(max_polls):
        pending = [o for o in outcomes if o.status is ItemStatus.PENDING]
        if not pending:
            return outcomes
        polled = in_call("poll", subjects, lambda p=pending: list(conn.poll(p)))
        outcomes = [o for o in outcomes if o.status is not ItemStatus.PENDING] + polled
    raise AssertionError("jobs never finished")


@pytest.fixture
def make_orch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[Callable[..., Orchestrator]]:
    """Orchestrators on a config dict whose ``helpdesk`` system is the fake; the host's
    sleeps are recorded, not slept, and jobs may be polled at once."""
    monkeypatch.setenv("ZD_TEST_TOKEN", TOKEN)
    made: list[Orchestrator] = []
    sleeps: list[float] = []

    def make(fake: FakeZendesk, *, plugins: tuple[Any, ...] = (), **system: Any
             ) -> Orchestrator:
        config = {"erasure": {"state_dir": str(tmp_path / "state"),
                              "retry": {"initial_wait": 0.0, "max_wait": 0.0}},
                  "systems": {"helpdesk": {"connector": "zendesk", "url": fake.url,
                                           "email": EMAIL, "poll_seconds": 0,
                                           "token": {"env": "ZD_TEST_TOKEN"}, **system}}}
        host = PluginHost.load(extra_plugins=plugins)
        cfg = parse_config(config, known_connectors={
            n: host.registry.get(n) for n in host.registry.names()})
        orch = Orchestrator(cfg, host, sleep=sleeps.append)
        made.append(orch)
        return orch

    yield make
    for o in made:
        o.close()
