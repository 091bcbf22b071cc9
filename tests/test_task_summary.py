"""A task's summary is typed (TaskSummary) and stored as JSON in one place: what earlier
versions stored still reads, a field at its default is not stored, and a key a newer
version added is ignored rather than failing the run."""

from __future__ import annotations

import json

from erasure.engine.tasks import TaskSummary


def test_a_stored_summary_of_an_earlier_version_reads() -> None:
    old = json.dumps({"action": None, "attempts": {"find": 2, "delete": 1}, "deferrals": 1,
                      "errors": ["timeout"], "error": "timeout", "error_kind": "transient",
                      "verified": False, "told_at": 1700000000.5, "from_the_future": 1})
    s = TaskSummary.from_text(old)
    assert s.action is None and s.attempts == {"find": 2, "delete": 1}
    assert s.deferrals == 1 and s.errors == ["timeout"] and s.error_kind == "transient"
    assert s.verified is False  # "verification performed" survives the round trip
    assert s.told_at == 1700000000.5
    assert TaskSummary.from_text(None) == TaskSummary() == TaskSummary.from_text("")


def test_only_what_differs_from_the_defaults_is_stored() -> None:
    assert TaskSummary().to_text() == "{}"
    s = TaskSummary(started_at="2026-01-01T00:00:00", verified=False)
    s.attempts["find"] = 1
    assert json.loads(s.to_text()) == {"started_at": "2026-01-01T00:00:00",
                                       "verified": False, "attempts": {"find": 1}}
    assert TaskSummary.from_text(s.to_text()) == s
    s.clear_failure()
    assert "verified" not in json.loads(s.to_text())
