"""The fake Salesforce server (erasure_salesforce.testing) per test, and a connector on it.

Each test gets a fresh org on its own port; the real simple-salesforce talks to it over
HTTP on 127.0.0.1. ``sf_connector(**settings)`` builds a connector signed in with the
server's session id (``auth = "session"``) and its state folder in the test's own.
"""

from __future__ import annotations

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
