"""Tables people read: receipts, open tasks. Sized for 80 columns (cron mail, CI logs)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

__all__ = ["compact_table", "receipts_table", "tasks_table"]


def compact_table(title: str) -> Table:
    # Fits 80 columns, the width cron mails and CI logs have.
    return Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False,
                 show_edge=False, title_justify="left")


def receipts_table(receipts: list[dict[str, Any]], title: str = "Receipts") -> Table:
    """A table of receipts for people (one request's: no request column)."""
    several = len({r["body"]["request"] for r in receipts}) > 1
    table = compact_table(title)
    cols = ["request"] if several else []
    cols += ["system", "action", "outcome", "found", "acted", "review", "failed", "residue",
             "tries"]
    for col in cols:
        table.add_column(col, overflow="fold", no_wrap=col != "request", min_width=len(col))
    notes = []
    colour = {"completed": "green", "retained": "cyan", "partial": "yellow", "failed": "red",
              "not_covered": "red"}
    for r in receipts:
        b = r["body"]
        c = b["counts"]
        acted = sum(c.get(k, 0) for k in ("done", "already_done", "exported"))
        note = "; ".join(b.get("errors") or []) or (b.get("policy_reason") or "")
        if note:
            notes.append(f"{b['system']}: {note}")
        table.add_row(
            *([b["request"]] if several else []), b["system"], b.get("action") or "-",
            f"[{colour.get(b['outcome'], 'white')}]{b['outcome']}[/]",
            str(c["found"]), str(acted), str(c["review"]), str(c.get("failed", 0)),
            str(c["residue"]), str(sum(b.get("attempts", {}).values())),
        )
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def tasks_table(tasks: list[Any], reminder_days: float) -> Table:
    """Tasks of open requests that wait or failed: when they go on, and their last error."""
    table = compact_table("Tasks waiting or failed")
    for col in ("request", "system", "state", "next try (UTC)", "last error"):
        table.add_column(col, overflow="fold", no_wrap=col in ("request", "system"))
    now = time.time()
    for t in tasks:
        summary = json.loads(t.summary) if t.summary else {}
        state = t.stage.replace("_", " ") if t.outcome != "failed" else "[red]failed[/]"
        if t.stage == "awaiting_confirmation":
            told = summary.get("told_at")
            if told is not None and now - told > reminder_days * 86400:
                state = f"[bold red]confirmation overdue ({int((now - told) // 86400)} d)[/]"
        elif summary.get("deferrals") and t.outcome != "failed":
            state += f" (deferred {summary['deferrals']}x)"
        when = "-" if t.not_before is None or t.outcome == "failed" else (
            f"{datetime.fromtimestamp(t.not_before, UTC):%Y-%m-%d %H:%M}")
        error = summary.get("error") or summary.get("last_error") or ""
        table.add_row(t.request_id, t.system, state, when, escape(error))
    return table
