"""The retention sweep: delete what every system holds past its retention, with receipts.

``erasure sweep`` runs this once a day from cron. Per system whose connector declares
``Capability.RETENTION`` (and whose policy is not ``retain``, a legal hold):

1. take the system's sweep lease (a second sweep at the same time skips the system);
2. ask the connector for its cutoff (it owns the period: "mail 12 months") and for every
   item dated before it (``expired``: findings that belong to nobody);
3. delete them through the connector's own ``delete``, with the host's retries, in calls
   of at most ``max_batch`` findings (the connector batches further: IMAP UID EXPUNGE in
   chunks);
4. verify: ask for expired items again; whatever is left is residue;
5. write one signed receipt per system, chained with the request receipts: counts per
   group (folder, table) and no personal data; record when the system was swept and how
   old its oldest item is now, for ``erasure status``.

``--dry-run`` does steps 2 and the counting only: it changes nothing, not even the ledger.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .engine.writer import deliver
from .leases import Heartbeat
from .ledger import utcnow
from .models import Capability, Finding, ItemStatus, Policy

if TYPE_CHECKING:
    from .orchestrator import Orchestrator
    from .systems import System

__all__ = ["RECEIPT_KIND", "SweepResult", "run_sweep"]

log = logging.getLogger(__name__)

#: ``kind`` of a sweep receipt's body (request receipts have none)
RECEIPT_KIND = "retention_sweep"


@dataclass
class SweepResult:
    """What a sweep did (or, dry, would do) in one system."""

    system: str
    outcome: str  # completed | partial | failed | skipped | would_delete
    cutoff: datetime | None = None
    #: group (folder, table) -> {"expired": n, "deleted": n, "failed": n}
    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    residue: int = 0
    note: str = ""
    receipt_seq: int | None = None
    #: the sweep's id: its receipts' ``request`` (``erasure receipts show SWEEP_ID``)
    sweep_id: str = ""
    oldest: datetime | None = None
    #: classified errors (no personal data) and attempts per step, for the receipt
    errors: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def expired(self) -> int:
        return sum(g["expired"] for g in self.groups.values())

    @property
    def deleted(self) -> int:
        return sum(g.get("deleted", 0) for g in self.groups.values())

    @property
    def ok(self) -> bool:
        return self.outcome in ("completed", "skipped", "would_delete")


def _sweepable(system: System) -> str | None:
    """Why ``system`` is not swept (None: it is)."""
    if system.uncovered:
        return f"not covered: {system.uncovered}"
    if system.cls is None or not system.cls.supports(Capability.RETENTION):
        return "no retention capability"
    if system.config.policy is Policy.RETAIN:
        return "retained under policy (legal hold): not swept"
    return None


def run_sweep(orch: Orchestrator, *, dry_run: bool = False, only: Sequence[str] | None = None,
              now: datetime | None = None) -> list[SweepResult]:
    """Sweep every system with retention (or the ``only`` ones); one result each."""
    now = now or datetime.now(UTC)
    sweep_id = f"sweep-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    if not dry_run:
        orch.limit_calls()  # a sweep's calls count against the systems' limits too
    results = []
    for name, system in orch.systems.items():
        if only and name not in only:
            continue
        why = _sweepable(system)
        if why is not None:
            if only or system.cls is not None and system.cls.supports(Capability.RETENTION):
                results.append(SweepResult(name, "skipped", note=why))
            continue
        result = _sweep_system(orch, system, sweep_id, now, dry_run)
        result.sweep_id = sweep_id
        results.append(result)
    return results


def _sweep_system(orch: Orchestrator, system: System, sweep_id: str, now: datetime,
                  dry_run: bool) -> SweepResult:
    ledger, host = orch.ledger, orch.config.host
    name = system.name
    if dry_run:
        return _work(orch, system, now, dry_run=True)
    if not ledger.claim_sweep(name, host.lease_seconds, orch.clock()):
        return SweepResult(name, "skipped", note="another sweep of this system is running")
    try:
        with Heartbeat(lambda ids: ledger.renew_sweeps(ids, host.lease_seconds, orch.clock()),
                       [name], host.lease_seconds / 3):
            result = _work(orch, system, now, dry_run=False)
            if result.outcome != "skipped":
                _write_receipt(orch, system, sweep_id, now, result)
        return result
    finally:
        ledger.release_sweep(name)


def _work(orch: Orchestrator, system: System, now: datetime, *, dry_run: bool) -> SweepResult:
    """Find, (delete, verify) and count in one system."""
    result = SweepResult(system.name, "failed")
    errors: list[str] = []
    attempts: Counter[str] = Counter()

    def call(action: str, fn: Callable[[Any], Any]) -> list[Any] | None:
        res = system.call(fn, system.context(action, ["retention"]))
        attempts[action] += res.attempts
        if res.error:
            errors.append(f"{action}: {res.error}")
            return None
        return res.values

    got = call("retention", lambda c: [c.retention_cutoff(now)])
    if got is None:
        result.note = "; ".join(errors)
        return result
    cutoff = got[0]
    if cutoff is None:
        return SweepResult(system.name, "skipped", note="no retention configured")
    result.cutoff = cutoff
    expired: list[Finding] | None = call("find", lambda c: c.expired(cutoff))
    if expired is None:
        result.note = "; ".join(errors)
        _remember(result, errors, attempts)
        return result
    for f in expired:
        result.groups.setdefault(f.kind, {"expired": 0, "deleted": 0, "failed": 0})
        result.groups[f.kind]["expired"] += 1
    if dry_run:
        result.outcome = "would_delete"
        oldest = call("oldest", lambda c: [c.oldest()])
        result.oldest = oldest[0] if oldest else None
        return result
    _delete(system, expired, result, errors, attempts)
    left = call("verify", lambda c: c.expired(cutoff))
    result.residue = len(left) if left is not None else 0
    oldest = call("oldest", lambda c: [c.oldest()])
    result.oldest = oldest[0] if oldest else None
    failed = sum(g["failed"] for g in result.groups.values())
    clean = not errors and not failed and not result.residue and left is not None
    result.outcome = ("completed" if clean else
                      "partial" if result.deleted or not result.expired else "failed")
    result.note = "; ".join(errors)
    _remember(result, errors, attempts)
    return result


def _remember(result: SweepResult, errors: list[str], attempts: Counter[str]) -> None:
    result.errors, result.attempts = list(errors), dict(attempts)


def _delete(system: System, expired: list[Finding], result: SweepResult, errors: list[str],
            attempts: Counter[str]) -> None:
    """Delete in calls of at most ``max_batch`` findings (one call when unlimited)."""
    size = (system.cls.max_batch if system.cls else None) or len(expired) or 1
    kind_of = {f.ref: f.kind for f in expired}
    for i in range(0, len(expired), size):
        batch = expired[i : i + size]
        res = system.call_items(lambda c, fs: c.delete(fs), batch,
                                system.context("delete", ["retention"]))
        attempts["delete"] += res.attempts
        if res.error:
            errors.append(f"delete: {res.error}")
        seen = set()
        for o in res.values:
            seen.add(o.finding.ref)
            group = result.groups[kind_of[o.finding.ref]]
            if o.status in (ItemStatus.DONE, ItemStatus.ALREADY_DONE):
                group["deleted"] += 1
            else:
                group["failed"] += 1
        for f in batch:
            if f.ref not in seen:
                result.groups[f.kind]["failed"] += 1


def _write_receipt(orch: Orchestrator, system: System, sweep_id: str, now: datetime,
                   result: SweepResult) -> None:
    """Seal the receipt and record the sweep in one transaction, fenced by the lease."""
    ledger = orch.ledger
    failed = sum(g["failed"] for g in result.groups.values())
    body = {
        "kind": RECEIPT_KIND,
        "request": sweep_id,
        "system": system.name,
        "connector": system.config.connector,
        "connector_version": system.version,
        "policy": system.config.policy.value,
        "action": "sweep",
        "outcome": result.outcome,
        "cutoff": result.cutoff.isoformat() if result.cutoff else None,
        "counts": {"found": result.expired, "actionable": result.expired, "review": 0,
                   "residue": result.residue, "done": result.deleted, "failed": failed},
        "groups": {g: dict(c) for g, c in sorted(result.groups.items())},
        "attempts": result.attempts,
        "errors": result.errors,
        "verification": {"performed": True, "ok": result.residue == 0},
        "oldest_item_at": result.oldest.isoformat() if result.oldest else None,
        "started_at": now.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
    }
    watched = bool(orch.plugins.hook.erasure_receipt_written.get_hookimpls())
    chain = orch.chain
    with ledger.tx() as conn:
        oldest = result.oldest.astimezone(UTC).replace(tzinfo=None) if result.oldest else None
        # sealed, stored and signed through the same chain as request receipts
        (r,), head = chain.append(conn, [(sweep_id, body)])
        if not ledger.record_sweep(conn, system.name, last_swept_at=utcnow(),
                                   last_outcome=result.outcome, last_deleted=result.deleted,
                                   oldest_at=oldest, receipt_seq=r.seq):
            # another sweep took the lease (this one outlived it): its receipt counts
            raise RuntimeError("sweep lease lost; nothing recorded")
        if watched:
            ledger.add_events(conn, [(str(uuid.uuid4()), "erasure_receipt_written",
                                      r.to_json())])
    chain.keep(head)
    result.receipt_seq = r.seq
    if watched:
        deliver(ledger, orch.plugins)
