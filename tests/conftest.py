"""Shared fixtures: an orchestrator over in-memory systems, built the way users build one."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from erasure import PluginHost
from erasure.config import parse_config
from erasure.orchestrator import Orchestrator
from erasure.testing import MemoryStore

sys.path.insert(0, str(Path(__file__).parent))

# pytester runs the connector contract suite against planted bugs (test_contract_catches_bugs).
pytest_plugins = ["pytester"]


@pytest.fixture
def sleeps() -> list[float]:
    """Waits the retry logic asked for (tests never really sleep)."""
    return []


@pytest.fixture
def make_orch(tmp_path: Path, sleeps: list[float]) -> Iterator[Callable[..., Orchestrator]]:
    """Build an Orchestrator from a config dict; stores are named after the test."""
    made: list[Orchestrator] = []

    def make(config: dict[str, Any], *, plugins: tuple[Any, ...] = (),
             uncovered: frozenset[str] = frozenset(), **kw: Any) -> Orchestrator:
        config = {k: dict(v) for k, v in config.items()}
        config.setdefault("erasure", {})
        config["erasure"].setdefault("state_dir", str(tmp_path / "state"))
        host = PluginHost.load(extra_plugins=plugins)
        cfg = parse_config(config, known_connectors={
            n: host.registry.get(n) for n in host.registry.names()}, uncovered=uncovered)
        orch = Orchestrator(cfg, host, sleep=sleeps.append, **kw)
        made.append(orch)
        return orch

    yield make
    for o in made:
        o.close()
    MemoryStore.reset()


@dataclass(frozen=True)
class PgDatabase:
    """A private PostgreSQL database for one test: its name, URL and an admin engine."""

    name: str
    url: str
    admin: Any


@pytest.fixture
def pg_database() -> Iterator[PgDatabase]:
    """A fresh database on the local PostgreSQL, dropped after the test."""
    import uuid

    import sqlalchemy as sa

    try:
        admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text("SELECT 1"))
    except Exception as exc:  # pragma: no cover - CI has PostgreSQL
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {type(exc).__name__}")
    name = f"erasure_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PgDatabase(name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", admin)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
