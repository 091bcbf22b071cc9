"""What ``erasure status --json`` and ``erasure receipts show --json`` print: one shape
each, documented as a JSON Schema (docs/status.schema.json, docs/receipts-show.schema.json)
for scripts. No personal data: the same fields the tables show."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .engine.tasks import TaskSummary
from .tables import why_waiting

if TYPE_CHECKING:
    from .ledger import Ledger

__all__ = ["FORMAT", "receipts_report", "requests_beyond", "status_report"]

#: the shapes' version: a field removed or changed in meaning gives a new one
FORMAT = 1


def _iso(value: datetime | None) -> str | None:
    """A naive UTC datetime (the ledger's) as ISO 8601 with its zone."""
    return None if value is None else value.replace(tzinfo=UTC).isoformat(timespec="seconds")


def requests_beyond(ledger: Ledger, shown: int, *, finished_too: bool) -> int:
    """How many requests (open, or all) a list of ``shown`` left out."""
    total = ledger.count_requests()
    if not finished_too:
        total -= ledger.count_requests("done")
    return max(total - shown, 0)


def status_report(ledger: Ledger, *, finished_too: bool, limit: int = 1000) -> dict[str, Any]:
    """Requests (open, or all; at most ``limit``, ``more`` counts the rest), the tasks that
    wait or failed, and the live packages."""
    from .ledger import days_left, utcnow

    now = utcnow()
    rows = ledger.list_requests(open_only=not finished_too, limit=limit)
    tasks = ledger.open_tasks()
    requests = {r.id: r for r in rows}
    for t in tasks:
        if t.request_id not in requests:
            requests[t.request_id] = ledger.get_request(t.request_id)
    by_request: dict[str, list[Any]] = {}
    for t in tasks:
        by_request.setdefault(t.request_id, []).append(t)
    task_list = []
    for t in tasks:
        s = TaskSummary.from_text(t.summary)
        waits = "" if t.outcome == "failed" or s.blocked else why_waiting(
            t, by_request[t.request_id], requests.get(t.request_id), now)
        task_list.append({
            "request": t.request_id, "system": t.system, "stage": t.stage,
            "outcome": t.outcome, "failed": t.outcome == "failed",
            "blocked": s.blocked, "deferrals": s.deferrals,
            "next_try": None if t.not_before is None or t.outcome == "failed" else
            datetime.fromtimestamp(t.not_before, UTC).isoformat(timespec="seconds"),
            "waits_for": waits or None,
            "held": s.held,
            "error": s.blocked or s.error or s.last_error,
        })
    packages = [{
        "request": p["request_id"], "file": p["file"], "made_at": _iso(p["made_at"]),
        "expires_at": _iso(p["expires_at"]), "delivered_at": _iso(p["delivered_at"]),
        "subject_erased": p["subject_erased_at"] is not None,
    } for p in ledger.live_packages()]
    return {
        "format": FORMAT,
        "requests": [{
            "request": r.id, "ticket": r.ticket, "type": r.type, "status": r.status,
            "outcome": r.outcome, "received_at": _iso(r.received_at),
            "due_at": _iso(r.due_at),
            "days_left": None if r.status == "done" else days_left(r.due_at, now),
            "extended": bool(r.extension_reason),
        } for r in rows],
        "more": requests_beyond(ledger, len(rows), finished_too=finished_too),
        "tasks": task_list,
        "packages": packages,
    }


def receipts_report(request_id: str, receipts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A request's (or a sweep's) receipts: each one's sequence number, hash and body."""
    return {
        "format": FORMAT,
        "request": request_id,
        "receipts": [{"seq": r["seq"], "hash": r["hash"], "body": r["body"]}
                     for r in receipts],
    }
