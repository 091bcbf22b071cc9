"""The end of a request: its package (access, portability) and one receipt body per system.

Bodies hold no personal data: item references are keyed hashes, errors are classified
messages. Sealing (hash chain, signature) and storing happen in the runner, in the same
transaction as the request's end.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..export import PackageInfo, write_package
from ..freetext import reason_hash
from ..ledger import utcnow
from ..models import Action, RequestType
from ..packages import new_password, sha256_of
from .review import receipt_decisions
from .rules import undecided, worst
from .steps import StepContext, Work
from .tasks import TaskWork

__all__ = ["package", "package_row", "receipt_bodies", "request_outcome", "subject_hashes"]


def package(ctx: StepContext, w: Work) -> tuple[Path, str, str | None] | None:
    """Write the access or portability package from the records the ledger holds for the
    request, so a resumed run writes what an uninterrupted one would have; its path, its
    SHA-256 and (with ``package_password``) the password it was encrypted with."""
    exporting = [t for t in w.tasks.values() if t.summary.action == Action.EXPORT.value]
    if not exporting:
        return None
    records = {name: t.data.records for name, t in w.tasks.items() if t.data.records}
    stamps = [t.summary.exported_at for t in exporting if t.summary.exported_at]
    password = new_password() if ctx.host.package_password else None
    path = write_package(ctx.host.exports(), w.row.id, w.type.value, records,
                         generated_at=min(stamps) if stamps else utcnow().isoformat(),
                         password=password, info=PackageInfo(ctx.config.controller, {
                             name: s.statement for name, s in ctx.config.systems.items()}))
    digest = sha256_of(path)
    for t in w.tasks.values():
        t.summary.package = path.name
        t.summary.package_sha256 = digest
    return path, digest, password


def request_outcome(w: Work) -> str:
    """The worst outcome over the request's systems."""
    return worst(t.outcome or "" for t in w.tasks.values())


def receipt_bodies(ctx: StepContext, w: Work, now: datetime) -> list[dict[str, Any]]:
    """One receipt body per system, in system order."""
    return [_body(ctx, w, w.tasks[name], now) for name in sorted(w.tasks)]


def _body(ctx: StepContext, w: Work, t: TaskWork, now: datetime) -> dict[str, Any]:
    system = ctx.systems.get(t.system)
    digest = ctx.keys.digest
    counts: dict[str, int] = defaultdict(int)
    for s in t.data.outcomes.values():
        counts[s] += 1
    items = sorted(digest(t.system, ref) for ref in t.data.actionable)
    review = sorted(
        digest(t.system, ref) for ref in t.data.findings if ref not in t.data.actionable
    )
    body = {
        "request": w.row.id,
        "ticket": w.row.ticket,
        "request_type": w.type.value,
        "system": t.system,
        "connector": system.config.connector if system else None,
        "connector_version": system.version if system else None,
        "policy": system.config.policy.value if system else None,
        "policy_reason": system.config.reason if system else None,
        "action": t.summary.action,
        "outcome": t.outcome,
        "counts": {
            "found": len(t.data.findings),
            "actionable": len(t.data.actionable),
            "review": len(review),
            "residue": len(t.data.residue),
            **dict(sorted(counts.items())),
        },
        "items": items,
        "review_items": review,
        "residue_items": sorted(digest(t.system, ref) for ref in t.data.residue),
        # How many findings of each kind (a table, "message", "object-outside-residency"):
        # a connector flags an item by its kind, and the receipt shows it.
        "kinds": dict(sorted(Counter(f.kind for f in t.data.findings.values()).items())),
        # Where residue outside the connector's mapping was found (table.column), no values.
        "unmapped_residue": t.summary.unmapped_residue,
        # What the connector says of the system now (API usage), no personal data.
        "system_facts": system.receipt_facts() if system else {},
        "id_spaces": ctx.config.id_spaces.used(w.known.all(), t.system),
        # Which identifier types the system was searched, and verified, with: a system
        # that cannot search an email is not "found 0" for an email.
        "identifier_types": {
            "searched": sorted({s.type.value for s in t.data.searched}),
            "verified": t.summary.verified_types,
        },
        "expansion_complete": w.known.complete,
        "attempts": t.summary.attempts,
        "deferrals": t.summary.deferrals,
        "errors": t.summary.errors,
        # why items were left as they were (not supported, retained): the connector's words
        # and review items nobody decided on (`erasure review`)
        "not_acted": t.summary.not_acted + [h for h in t.summary.held
                                            if h not in t.summary.not_acted] + (
            [f"{n} review items undecided"]
            if (n := undecided(t.summary.action, t.summary.undecided)) else []),
        # the operator's decisions on review items: item hashes, no values
        "review_decisions": receipt_decisions(ctx, w, t),
        "verification": {
            "performed": t.summary.verified is not None,
            "ok": bool(t.summary.verified) and not t.data.residue,
        },
        "subject_verified": bool(w.row.verified),
        # who checked the identity and how, when recorded by `erasure request verify`
        # (references the operator named, no personal data); None: --verified at creation
        "identity_check": json.loads(w.row.verified_how) if w.row.verified_how else None,
        # free text: the ledger keeps it encrypted with the request, the receipt its hash
        "unverified_override": reason_hash(digest, w.row.id, "unverified-override",
                                           w.row.override),
        "package": t.summary.package,
        "package_sha256": t.summary.package_sha256,
        "started_at": t.summary.started_at,
        "finished_at": now.isoformat(),
        "received_at": w.row.received_at.isoformat(),
        "due_at": w.row.due_at.isoformat(),
    }
    if w.type is RequestType.RECTIFICATION:
        # The fields, never the values: the receipt outlives the request's data.
        body["corrections"] = t.summary.corrections
        body["corrections_refused"] = t.summary.corrections_refused
    if w.type is RequestType.OBJECTION:
        body["objection_scope"] = w.intent.scope
    if t.summary.confirmation is not None:
        body["confirmation"] = t.summary.confirmation
    if t.summary.told_at is not None:
        # Art. 19: when the processor was told, by which message, when it confirmed and
        # by which reference; never the identifiers the notice carried.
        body["notice"] = {
            "sent_at": _iso(t.summary.told_at),
            "messages": t.summary.notices,
            "reminders": t.summary.reminders,
            "confirmed_at": _iso(t.summary.confirmed_at),
            "confirmation": t.summary.confirmation,
        }
    return body


def _iso(epoch: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (None stays None)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def subject_hashes(ctx: StepContext, w: Work) -> list[str]:
    """Keyed hashes of the request's strong identifiers (scoped to their id space)."""
    return sorted({ctx.keys.digest("package", s.ident.type.value, s.space or "",
                                   s.ident.value) for s in w.known.strong()})


def package_row(ctx: StepContext, w: Work, path: Path, digest: str,
                now: datetime) -> dict[str, Any]:
    """The ledger row of a package just written."""
    return {"request_id": w.row.id, "file": path.name, "sha256": digest, "made_at": now,
            "expires_at": now + timedelta(days=ctx.host.package_days),
            "subjects": json.dumps(subject_hashes(ctx, w)), "deleted_at": None,
            "deleted_why": None}
