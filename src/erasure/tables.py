"""Tables people read: receipts, open tasks. Sized for 80 columns (cron mail, CI logs)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from .engine.tasks import TaskSummary

__all__ = ["compact_table", "receipts_table", "tasks_table", "why_waiting"]


def compact_table(title: str) -> Table:
    # Fits 80 columns, the width cron mails and CI logs have.
    return Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False,
                 show_edge=False, title_justify="left")


def receipts_table(receipts: list[dict[str, Any]], title: str = "Receipts") -> Table:
    """A table of receipts for people (one request's: no request column)."""
    several = len({r["body"]["request"] for r in receipts}) > 1
    table = compact_table(title)
    cols = ["request"] if several else []
    cols += ["system", "action", "outcome", "found", "acted", "review", "failed",
             "unsupported", "retained", "residue", "calls"]
    for col in cols:
        table.add_column(col, overflow="fold", no_wrap=col != "request", min_width=len(col))
    notes = []
    colour = {"completed": "green", "retained": "cyan", "partial": "yellow", "failed": "red",
              "not_covered": "red"}
    for r in receipts:
        b = r["body"]
        c = b["counts"]
        acted = sum(c.get(k, 0) for k in ("done", "already_done", "exported"))
        # every reason, not the first: why items failed, were not acted on, were kept
        reasons = [*(b.get("errors") or []), *(b.get("not_acted") or [])]
        if b.get("policy_reason"):
            reasons.append(b["policy_reason"])
        if c.get("residue"):
            # why the receipt says residue: items found again after the act, and where
            # outside the mapping (places, no values)
            reasons.append(f"residue: {c['residue']} item(s) still found after the act")
        if b.get("unmapped_residue"):
            reasons.append("outside the mapping at " + ", ".join(b["unmapped_residue"]))
        if reasons:
            notes.append(f"{b['system']}: {escape('; '.join(reasons))}")
        table.add_row(
            *([b["request"]] if several else []), b["system"], b.get("action") or "-",
            f"[{colour.get(b['outcome'], 'white')}]{b['outcome']}[/]",
            str(c["found"]), str(acted), str(c["review"]), str(c.get("failed", 0)),
            str(c.get("not_supported", 0)), str(c.get("retained", 0)), str(c["residue"]),
            # every call made to the system (find, act, verify), retries included
            str(sum(b.get("attempts", {}).values())),
        )
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def tasks_table(tasks: list[Any], due_dates: Mapping[str, datetime],
                requests: Mapping[str, Any] | None = None) -> Table:
    """Tasks of open requests that wait or failed: why they wait, when they go on, and
    their last error.

    A processor's confirmation is overdue once its request's due date (``due_dates``,
    naive UTC, per request id) has passed: the request cannot end before it. ``requests``
    (rows by id) tell a task waiting for approval, an identity check or a run that holds it.
    """
    table = compact_table("Tasks waiting or failed")
    for col in ("request", "system", "state", "next try (UTC)", "last error"):
        table.add_column(col, overflow="fold", no_wrap=col in ("request", "system"))
    now = datetime.now(UTC).replace(tzinfo=None)
    by_request: dict[str, list[Any]] = {}
    for t in tasks:
        by_request.setdefault(t.request_id, []).append(t)
    for t in tasks:
        summary = TaskSummary.from_text(t.summary)
        state = t.stage.replace("_", " ") if t.outcome != "failed" else "[red]failed[/]"
        blocked = summary.blocked
        if blocked:
            state = f"[bold red]blocked[/] ({state})"
        elif t.stage == "awaiting_confirmation":
            due = due_dates.get(t.request_id)
            reminders = summary.reminders
            if due is not None and now > due:
                state = ("[bold red]confirmation overdue "
                         f"({(now - due) // timedelta(days=1) + 1} d past due)[/]")
            elif reminders:
                state += f" ({reminders} reminder{'s' if reminders > 1 else ''})"
        elif summary.deferrals and t.outcome != "failed":
            state += f" (deferred {summary.deferrals}x)"
        if t.outcome != "failed" and not blocked:
            why = why_waiting(t, by_request[t.request_id],
                               (requests or {}).get(t.request_id), now)
            if why:
                state += f": {escape(why)}"
        when = "-" if t.not_before is None or t.outcome == "failed" else (
            f"{datetime.fromtimestamp(t.not_before, UTC):%Y-%m-%d %H:%M}")
        if blocked:  # waits for an operator; fails at `when` (the due-date margin)
            when = f"erasure retry (fails {when})"
        error = blocked or summary.error or summary.last_error or ""
        table.add_row(t.request_id, t.system, state, when, escape(error))
    return table


def why_waiting(t: Any, siblings: list[Any], request: Any, now: datetime) -> str:
    """Why a task that is not failed waits, in words ("" when its stage says it)."""
    status = getattr(request, "status", None)
    if status == "awaiting_verification":
        return f"waits for an identity check (`erasure request verify {t.request_id}`)"
    if status == "awaiting_approval":
        return f"waits for approval (`erasure approve {t.request_id}`)"
    if t.stage == "acting" and t.not_before is not None:
        kept = TaskSummary.from_text(t.summary).held
        if kept:  # a hold that may be lifted: asked again at the next try
            return (f"{'; '.join(kept)}; checked again then, until the request's give-up "
                    "time (then it ends retained)")
    lease = getattr(request, "lease_until", None)
    held = lease is not None and lease > now.replace(tzinfo=UTC).timestamp()
    if t.stage in ("acting", "verifying") and not held and t.not_before is None:
        return "stopped mid-way; the next run resumes (its actions are idempotent)"
    if t.stage == "found":
        # a request acts only once every system was searched: name the ones not yet
        behind = [f"{o.system} ({o.stage.replace('_', ' ')}"
                  + (", failed)" if o.outcome == "failed" else ")")
                  for o in siblings if o.system != t.system and o.stage == "pending"]
        if behind:
            return "waits for " + ", ".join(behind) + " to be searched"
    return ""
