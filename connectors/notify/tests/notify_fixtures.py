"""A real SMTP server (aiosmtpd) and a webhook receiver on 127.0.0.1, a CRM that knows
Alice and Bob, and configs with processors that are told through them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clihelpers import cli_env, seed, write_config
from erasure_notify.fakes import SmtpSink, WebhookReceiver

from erasure import PluginHost
from erasure.config import parse_config
from erasure.orchestrator import Orchestrator

SECRET = "nexbridge-shared-secret-0123456789"
ALICE_PHONE = "+447700900123"
BOB_PHONE = "+447700900456"
CRM = {
    "contact/1": ("contact", {"email": "alice@example.com", "phone": ALICE_PHONE,
                              "customer_id": "C-1001", "name": "Alice Liddell"}),
    "contact/2": ("contact", {"email": "bob@example.net", "phone": BOB_PHONE,
                              "customer_id": "C-1002", "name": "Bob Builder"}),
}
#: what Alice's request knows of her that a carrier must never see
ALICE_NOT_PHONE = ("alice@example.com", "C-1001", "Alice", "Liddell")
#: host settings that keep retries quick
FAST = {"retry": {"initial_wait": 0.01, "max_wait": 0.02, "defer_initial": 0}}


def smtp(sink: SmtpSink, *types: str, **extra: Any) -> dict[str, Any]:
    """A processor told by email through ``sink``."""
    return {"connector": "notify", "transport": "smtp", "host": "127.0.0.1",
            "port": sink.port, "security": "plain", "sender": "privacy@shop.example",
            "to": ["dpo@processor.example"], "identifiers": list(types or ("phone",)),
            **extra}


def hook(receiver: WebhookReceiver, *types: str, **extra: Any) -> dict[str, Any]:
    """A processor told by signed webhook (the secret by env reference)."""
    return {"connector": "notify", "transport": "webhook", "url": receiver.url,
            "secret": {"env": "NEXBRIDGE_SECRET"}, "identifiers": list(types or ("phone",)),
            **extra}


#: the CLI's environment: the webhook secret, and only the plugins these tests use (the
#: other connectors' imports cost a second of start-up per command)
ENV = cli_env({"NEXBRIDGE_SECRET": SECRET}, block="sql,mail,s3,salesforce,zendesk")


@dataclass
class World:
    root: Path
    crm: Path

    def config(self, processors: dict[str, dict[str, Any]], **host: Any) -> Path:
        return write_config(self.root, {"crm": {"connector": "memory", "path": str(self.crm)},
                                        **processors}, host={**FAST, **host})


@pytest.fixture
def world(tmp_path: Path) -> World:
    crm = tmp_path / "crm.json"
    seed(crm, CRM)
    return World(tmp_path, crm)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(SECRET).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def make_orch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Orchestrator]]:
    """An in-process orchestrator over a config file, with a clock the test moves."""
    made: list[Orchestrator] = []
    monkeypatch.setenv("NEXBRIDGE_SECRET", SECRET)

    def make(config: Path, clock: Callable[[], float] | None = None) -> Orchestrator:
        import tomllib

        host = PluginHost.load()
        cfg = parse_config(tomllib.loads(config.read_text()), path=config, known_connectors={
            n: host.registry.get(n) for n in host.registry.names()})
        orch = Orchestrator(cfg, host, sleep=lambda _s: None,
                            **({"clock": clock} if clock else {}))
        made.append(orch)
        return orch

    yield make
    for o in made:
        o.close()
