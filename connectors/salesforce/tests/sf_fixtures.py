"""The fake Salesforce server (erasure_salesforce.testing) per test, and a connector on it.

Each test gets a fresh org on its own port; the real simple-salesforce talks to it over
HTTP on 127.0.0.1. ``sf_connector(**settings)`` builds a connector signed in with the
server's session id (``auth = "session"``) and its state folder in the test's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from erasure_salesforce import SalesforceConnector, SalesforceSettings
from erasure_salesforce.testing import FakeSalesforce, Org


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    with FakeSalesforce(Org(page_size=50)) as server:
        yield server


def settings_for(server: FakeSalesforce, **extra: Any) -> SalesforceSettings:
    return SalesforceSettings.model_validate({
        "instance_url": server.url, "auth": "session", "session_id": server.session_id,
        **extra})


@pytest.fixture
def sf_connector(fake: FakeSalesforce, tmp_path: Path
                 ) -> Iterator[Callable[..., SalesforceConnector]]:
    made: list[SalesforceConnector] = []

    def make(**extra: Any) -> SalesforceConnector:
        c = SalesforceConnector("crm", settings_for(fake, **extra))
        c.state_dir = tmp_path / "state"
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def add_person(org: Org, email: str, *, phone: str | None = None, first: str = "Pat",
               last: str = "Doe", lead: bool = False) -> str:
    """A Contact (or Lead) and its id."""
    values: dict[str, Any] = {"FirstName": first, "LastName": last, "Email": email}
    if phone:
        values["Phone"] = phone
    if lead:
        values["Company"] = "Acme"
    return org.create("Lead" if lead else "Contact", values)


@pytest.fixture
def sf_host(fake: FakeSalesforce, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``make(**settings) -> (orchestrator, clock)``: the real host (plugins from entry
    points, ledger, retries) with a system ``crm`` on the fake; retries never sleep, and
    ``clock[0]`` is the time the host sees (advance it to let deferrals pass)."""
    from erasure import PluginHost
    from erasure.config import parse_config
    from erasure.orchestrator import Orchestrator

    made: list[Any] = []

    def make(host: dict[str, Any] | None = None, **settings: Any) -> tuple[Any, list[float]]:
        clock = [time.time()]
        plugins = PluginHost.load()
        config = parse_config({
            "erasure": {"state_dir": str(tmp_path / "state"), **(host or {})},
            "systems": {"crm": {"connector": "salesforce", "instance_url": fake.url,
                                "auth": "session", "session_id": fake.session_id,
                                "poll_seconds": 0, **settings}}},
            known_connectors={n: plugins.registry.get(n) for n in plugins.registry.names()})
        orch = Orchestrator(config, plugins, sleep=lambda s: None, clock=lambda: clock[0])
        made.append(orch)
        return orch, clock

    yield make
    for o in made:
        o.close()


def run_until_done(orch: Any, clock: list[float], rid: str, runs: int = 30) -> None:
    """Run the host until the request ends, an hour passing between runs (deferrals)."""
    for _ in range(runs):
        orch.run()
        if orch.ledger.get_request(rid).status == "done":
            return
        clock[0] += 3600
    tasks = {t.system: (t.stage, t.summary) for t in orch.ledger.tasks_for([rid])}
    raise AssertionError(f"the request did not end: {tasks}")


def receipt(orch: Any, rid: str) -> dict[str, Any]:
    (body,) = [r["body"] for r in orch.ledger.receipts(rid) if r["body"]["system"] == "crm"]
    return body
