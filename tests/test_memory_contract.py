"""The in-memory connector passes the contract suite, in memory and file-backed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr

from erasure import (
    CapabilityNotSupported,
    Finding,
    Identifier,
    IdentifierType,
    ObjectionScope,
    Subject,
)
from erasure.testing import ConnectorContract, MemoryConnector, MemoryStore, Seeded
from erasure.testing.memory import MemorySettings


class MemorySeeding(ConnectorContract):
    """How the contract suite seeds and observes a memory system.

    Not collected itself (no ``Test`` prefix); ``connector_class`` lets the planted-bug tests
    (test_contract_catches_bugs.py) run the suite against broken subclasses.
    """

    connector_class: ClassVar[type[MemoryConnector]] = MemoryConnector
    seed_types = frozenset(IdentifierType)  # items take a field for every identifier type
    #: delete, anonymise and restrict answer PENDING until polled this many times (0: never)
    pending_polls: ClassVar[int] = 0
    #: the system's page size: the suite's large scenario (population) turns two pages
    page_size: ClassVar[int] = 1000

    @pytest.fixture
    def connector(self, request: pytest.FixtureRequest) -> Iterator[MemoryConnector]:
        MemoryStore.reset()
        # pages of 1,000: the suite's large scenario (2,500 items) turns two of them
        yield self.connector_class("crm", MemorySettings(
            store=request.node.name, page_size=self.page_size, pending_polls=self.pending_polls,
            password=SecretStr("memory-secret-do-not-print")))
        MemoryStore.reset()

    def seed(self, connector: MemoryConnector, subject: Subject, *,
             single: bool = False) -> Seeded:
        # A contact with every identifier and, unless single, a lead with only the first
        # one (the email): both carry a note only this subject's items have.
        fields = {i.type.value: i.value for i in subject.identifiers}
        notes = {"contact": f"contact of {subject.key}", "lead": f"lead of {subject.key}"}
        items = {f"contact/{subject.key}": ("contact", {**fields, "note": notes["contact"]})}
        if not single:
            first = subject.identifiers[0]
            items[f"lead/{subject.key}"] = (
                "lead", {first.type.value: first.value, "note": notes["lead"]})
        connector.seed(items)
        markers = {*fields.values(), *(notes[kind] for kind, _ in items.values())}
        return Seeded(items=len(items), markers=markers)

    def seed_many(self, connector: MemoryConnector, subject: Subject, count: int) -> Seeded:
        # one write for all of them (the file-backed store rewrites its file per call)
        fields = {i.type.value: i.value for i in subject.identifiers}
        connector.seed({f"bulk/{subject.key}/{n}": ("contact", fields) for n in range(count)})
        return Seeded(items=count, markers=set(fields.values()))

    def refuse_item(self, connector: MemoryConnector, finding: Finding) -> None:
        connector.lock(finding.ref)

    def restricted(self, connector: MemoryConnector, findings: Sequence[Finding]) -> set[str]:
        return {f.ref for f in findings if connector.is_restricted(f.ref)}

    def objected(self, connector: MemoryConnector, findings: Sequence[Finding],
                 scope: ObjectionScope) -> set[str]:
        return {f.ref for f in findings if scope.value in connector.opted_out(f.ref)}


class TestMemoryContract(MemorySeeding):
    pass


class TestDeferredMemoryContract(MemorySeeding):
    """Every action a job the system finishes on the second poll (as Salesforce's Bulk API
    or Zendesk's job statuses): the whole suite polls, and the deferred-job tests run."""

    pending_polls = 2


class TestFileBackedMemoryContract(MemorySeeding):
    population = 25  # pages of 10: a file rewritten per call stays small

    @pytest.fixture
    def connector(self, tmp_path: Path) -> MemoryConnector:
        return self.connector_class(
            "files",
            MemorySettings(path=str(tmp_path / "store.json"), page_size=10,
                           password=SecretStr("hunter2-secret")),
        )


def test_a_scope_the_system_cannot_honour_is_refused_naming_it() -> None:
    MemoryStore.reset()
    crm = MemoryConnector("crm", MemorySettings(
        store="no-profiling", objection_scopes=(ObjectionScope.MARKETING,)))
    crm.seed({"c/1": ("contact", {"email": "bob@example.org"})})
    (found,) = crm.find([Subject("r", (Identifier.parse("email", "bob@example.org"),))])
    with pytest.raises(CapabilityNotSupported, match="profiling"):
        list(crm.object_to([found], ObjectionScope.PROFILING))
    assert crm.opted_out("c/1") == set()
    assert [o.status.value for o in crm.object_to([found], ObjectionScope.MARKETING)] == [
        "done"]
    MemoryStore.reset()
