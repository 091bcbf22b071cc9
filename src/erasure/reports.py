"""What the ``--json`` options print: one shape each, documented as a JSON Schema for
scripts: ``status`` (docs/status.schema.json), ``receipts show``
(docs/receipts-show.schema.json), ``run`` (docs/run.schema.json) and the one-shot request
commands, find, export, erase... (docs/request-result.schema.json). No personal data: the
same fields the tables and lines show."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .engine.tasks import TaskSummary
from .tables import why_waiting

if TYPE_CHECKING:
    from .config import Config
    from .engine.plan import PlanLine
    from .engine.runner import RunSummary
    from .ledger import Ledger

__all__ = ["FORMAT", "plan_report", "receipts_report", "request_result",
           "requests_beyond", "retention_rows", "run_report", "status_report"]

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


def status_report(ledger: Ledger, *, finished_too: bool, limit: int = 1000,
                  lease_seconds: float = 300.0) -> dict[str, Any]:
    """Requests (open, or all; at most ``limit``, ``more`` counts the rest), the tasks that
    wait or failed, the live packages, and the distributed work (per worker: live, gone
    or stopped; ``lease_seconds`` bounds when a gone worker's leases end)."""
    from .ledger import days_left, utcnow

    now = utcnow()
    rows = ledger.list_requests(open_only=not finished_too, limit=limit)
    # the tasks of the requests listed: --limit 3 shows three requests' tasks
    tasks = ledger.open_tasks(requests=[r.id for r in rows])
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
    doc = {
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
    work = ledger.work_by_worker(lease_seconds)
    if work["queued_batches"] or work["workers"]:  # `run --distributed` or a worker ran
        times = ("last_seen", "last_beat", "leases_end_by")
        doc["work"] = {**work, "workers": {
            name: {**w, **{k: _iso(w[k]) for k in times}}
            for name, w in work["workers"].items()}}
    return doc


def receipts_report(request_id: str, receipts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A request's (or a sweep's) receipts: each one's sequence number, hash and body."""
    return {
        "format": FORMAT,
        "request": request_id,
        "receipts": [{"seq": r["seq"], "hash": r["hash"], "body": r["body"]}
                     for r in receipts],
    }


def _state(summary: RunSummary, rid: str) -> str:
    """Where a request the run worked on stands after it, in one word."""
    if rid in summary.outcome_of:
        return "finished"
    if rid in summary.awaiting_verification:
        return "awaiting_verification"
    if rid in summary.awaiting_approval:
        return "awaiting_approval"
    return "open"


def run_report(summary: RunSummary) -> dict[str, Any]:
    """What one ``erasure run`` did: each request it worked on and where it stands, the
    tasks that failed or wait for an operator, and the receipt chain's head."""
    problems = {"failed": summary.failed, "blocked": summary.blocked, "held": summary.held}
    return {
        "format": FORMAT,
        "requests": [{
            "request": rid, "type": rtype, "state": _state(summary, rid),
            "outcome": summary.outcome_of.get(rid),
            "waiting": sorted(summary.left.get(rid, [])),
            "package": summary.packages.get(rid),
            "package_password": summary.package_passwords.get(rid),
        } for rid, rtype in summary.claimed.items()],
        **{kind: [{"request": rid, "system": system, "error": error}
                  for rid, system, error in rows] for kind, rows in problems.items()},
        "replanned": list(summary.replanned),
        "head": None if summary.head is None else {
            "count": summary.head[0], "hash": summary.head[1] or None},
        "ok": summary.ok,
    }


def plan_report(rtype: str, lines: Sequence[PlanLine]) -> dict[str, Any]:
    """A dry run (``--dry-run --json``): per system what would be done; nothing was."""
    return {
        "format": FORMAT, "request": None, "type": rtype, "dry_run": True,
        "plan": [{
            "system": line.system, "connector": line.connector, "policy": line.policy,
            "action": line.action, "searched": not line.unsearched,
            "found": None if line.unsearched else line.found,
            "actionable": None if line.unsearched else line.actionable,
            "review": None if line.unsearched else line.review,
            "note": line.note or None, "id_spaces": list(line.id_spaces),
        } for line in lines],
        "run": None, "receipts": [], "unsearched": [
            {"system": line.system, "reason": line.unsearched}
            for line in lines if line.unsearched],
    }


def request_result(rid: str, rtype: str, summary: RunSummary,
                   receipts: Sequence[dict[str, Any]],
                   unsearched: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A one-shot command's request (``erasure erase --json``...): the run that carried it
    out, its receipts when it ended, and the systems that could not be searched yet."""
    return {
        "format": FORMAT, "request": rid, "type": rtype, "dry_run": False, "plan": [],
        "run": run_report(summary),
        "receipts": receipts_report(rid, receipts)["receipts"],
        "unsearched": [{"system": s, "reason": r} for s, r in unsearched],
    }


def retention_rows(config: Config, ledger: Ledger, sweeping: frozenset[str],
                   now: datetime | None = None) -> list[tuple[str, str, str, str]]:
    """Per system with retention: (system, last swept, outcome, age of its oldest item).

    A system has retention when its connector is one of ``sweeping`` (those declaring it:
    :func:`erasure.plugins.declared_retention`) or a sweep of it is in the ledger; neither
    needs the connector imported."""
    now_naive = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    rows = {r["system"]: r for r in ledger.sweeps()}
    out = []
    for name, system in config.systems.items():
        r = rows.get(name)
        if r is None and system.connector not in sweeping:
            continue
        if r is None or r["last_swept_at"] is None:
            out.append((name, "never", "-", "-"))
            continue
        age = "-" if r["oldest_at"] is None else f"{(now_naive - r['oldest_at']).days} days"
        out.append((name, f"{r['last_swept_at']:%Y-%m-%d %H:%M}", r["last_outcome"] or "-",
                    age))
    return out
