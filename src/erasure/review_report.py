"""What ``erasure review --json`` and ``erasure plan --json`` print: one shape each,
documented as a JSON Schema (docs/review.schema.json, docs/plan.schema.json).

An item's values (what it matched, where it is, what else it holds) are in the review
document only while the request is open: they come from its encrypted state and are
purged with it; afterwards ``values`` is false and only hashes and decisions remain.
"""

from __future__ import annotations

from typing import Any

from .engine.desk import PlanView, ReviewView
from .engine.review import ReviewItem
from .engine.work import Decision

__all__ = ["FORMAT", "plan_report", "review_report"]

#: the shapes' version: a field removed or changed in meaning gives a new one
FORMAT = 1


def _decision(d: Decision | None) -> dict[str, Any] | None:
    """A decision without its reason's text (the receipt's reason hash is its trace)."""
    if d is None:
        return None
    return {"decision": d.decision, "by": d.by, "at": d.at,
            "reason_given": d.reason is not None}


def _item(i: ReviewItem, values: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"ref": i.ref, "system": i.system, "item": i.item,
                           "kind": i.kind or None, "reasons": list(i.reasons),
                           "decision": _decision(i.decision)}
    if values:
        out["matched"] = [{"type": t, "value": v, "provenance": p} for t, v, p in i.matched]
        out["location"] = i.location
        out["fields"] = list(i.fields)
        out["related"] = [{"type": t, "value": v} for t, v in i.related]
    return out


def review_report(view: ReviewView) -> dict[str, Any]:
    """The review document of one request (docs/review.schema.json)."""
    row = view.row
    items = [_item(i, view.values) for i in view.items]
    return {
        "format": FORMAT,
        "request": row.id,
        "type": row.type,
        "status": row.status,
        "outcome": row.outcome,
        "values": view.values,
        "items": items,
        "undecided": sum(1 for i in view.items if i.decision is None),
        "notes": [{"system": s, "note": n} for s, n in sorted(view.notes.items())],
        "recorded": [{"system": s, "item": item, "decision": d}
                     for s, item, d in view.recorded],
    }


def plan_report(view: PlanView) -> dict[str, Any]:
    """The plan document of one request (docs/plan.schema.json); no personal data."""
    row = view.row
    return {
        "format": FORMAT,
        "request": row.id,
        "type": row.type,
        "status": row.status,
        "plan_hash": view.plan_hash,
        "approved": row.approved_at is not None,
        "systems": [{
            "system": s.system, "connector": s.connector, "policy": s.policy,
            "action": s.action, "stage": s.stage, "items": s.items, "note": s.note or None,
            "review": [{"ref": i.ref, "item": i.item, "decision": _decision(i.decision)}
                       for i in s.review],
        } for s in view.systems],
    }
