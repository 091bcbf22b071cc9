"""The connector guide runs as written, and documents every hook with its signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from erasure import RequestType, hookspecs
from erasure.orchestrator import RequestSpec

GUIDE = Path(__file__).parent.parent / "docs" / "connectors.md"


def guide_code() -> str:
    """Every ```python block of the guide, in order, as one module."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 5
    return "\n\n".join(blocks)


@pytest.fixture
def guide() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "guide"}
    code = compile(guide_code(), str(GUIDE), "exec", dont_inherit=True)
    exec(code, namespace)  # noqa: S102 - our own docs
    return namespace


def test_the_guides_contract_tests_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_notes_guide=guide_code())
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 18 and not outcomes.get("failed"), result.stdout.str()


def test_the_guides_connectors_erase_through_the_orchestrator(make_orch, guide) -> None:
    service = guide["SERVICES"]["svc"] = guide["NotesService"]()
    for n in range(2):
        service.add_note("alice@example.com", f"note {n}")
    service.add_note("jimalice@example.com", "not hers")

    bridge = guide["TicketBridge"]()
    plugin = type("GuidePlugin", (), {
        "erasure_register_connectors": staticmethod(guide["erasure_register_connectors"])})
    orch = make_orch({"systems": {
        "notes": {"connector": "notes", "base_url": "svc", "token": {"env": "HOME"}},
        "bulk": {"connector": "notes-bulk", "base_url": "svc", "token": {"env": "HOME"}},
    }}, plugins=(plugin, bridge))
    rid = orch.submit(RequestSpec(RequestType.ERASURE, (("email", "alice@example.com"),),
                                  verified=True, ticket="T-7"))
    orch.run()
    assert [n["author_email"] for n in service.notes.values()] == ["jimalice@example.com"]
    assert orch.ledger.get_request(rid).outcome == "completed"
    assert list(bridge.posted.values()) == [("T-7", "completed")]


def _flat(text: str) -> str:
    return " ".join(text.replace("`", "").split())


def test_every_hook_is_documented_with_its_signature() -> None:
    guide = _flat(GUIDE.read_text(encoding="utf-8"))
    specs = [f for name, f in vars(hookspecs).items() if name.startswith("erasure_")]
    assert len(specs) >= 4
    for spec in specs:
        sig = inspect.signature(spec)
        params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
        assert f"{spec.__name__}({params}) -> {sig.return_annotation}" in guide, spec.__name__
