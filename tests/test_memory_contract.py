"""The in-memory connector passes the contract suite, in memory and file-backed."""

from __future__ import annotations

import pytest

from erasure import Subject
from erasure.testing import ConnectorContract, MemoryConnector, MemoryStore
from erasure.testing.memory import MemorySettings


class TestMemoryContract(ConnectorContract):
    @pytest.fixture
    def connector(self, request):
        MemoryStore.reset()
        yield MemoryConnector("crm", MemorySettings(store=request.node.name))
        MemoryStore.reset()

    def seed(self, connector, subject: Subject) -> None:
        fields = {i.type.value: i.value for i in subject.identifiers}
        connector.seed({f"contact/{subject.key}": ("contact", fields),
                        f"lead/{subject.key}": ("lead", fields)})


class TestFileBackedMemoryContract(TestMemoryContract):
    @pytest.fixture
    def connector(self, tmp_path):
        from pydantic import SecretStr

        return MemoryConnector(
            "files",
            MemorySettings(path=str(tmp_path / "store.json"), password=SecretStr("hunter2-secret")),
        )
