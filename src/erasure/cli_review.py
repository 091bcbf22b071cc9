"""The operator's review of a request before it acts: ``erasure review`` (the items waiting
for review, why each is weak, the decisions), ``erasure plan`` (what an approval covers,
with its hash) and ``erasure approve`` (docs/review.md)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from .cli_common import ConfigOpt, _errors, _orchestrator, app, out
from .tables import compact_table

if TYPE_CHECKING:  # the engine (SQLAlchemy, pydantic) only when a command runs
    from .engine.review import ReviewItem

__all__ = ["approve", "plan", "review"]

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object (docs/"
                                                      "review.schema.json, plan.schema.json).")]


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, sort_keys=True) + "\n")


def _line(text: str) -> None:
    out.print(text, soft_wrap=True, highlight=False, markup=False)


def _default_by() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container): --by is then needed
        return ""


@app.command()
def review(
    request_id: str,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="Act on this item like a strong match: SYSTEM:N or a hash "
                          "prefix, as listed (repeatable; 'all' for every one).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Leave this item as it is (repeatable; 'all').")] = None,
    include_all: Annotated[bool, typer.Option(
        "--include-all", help="Include every review item.")] = False,
    exclude_all: Annotated[bool, typer.Option(
        "--exclude-all", help="Exclude every review item.")] = False,
    by: Annotated[str | None, typer.Option(
        "--by", help="Who decides (a reference; default: your login name).")] = None,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Why (optional; kept encrypted with the request, its hash on "
                         "the receipt).")] = None,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Show the items waiting for review (weak matches the engine does not act on by
    itself), why each is weak, and record decisions on them."""
    from .review_report import review_report

    includes = [*(include or []), *(["all"] if include_all else [])]
    excludes = [*(exclude or []), *(["all"] if exclude_all else [])]
    with _orchestrator(config) as orch, _errors():
        if includes or excludes:
            view = orch.decide(request_id, include=includes, exclude=excludes,
                               by=by or _default_by(), reason=reason)
        else:
            view = orch.review(request_id)
        if json_:
            _print_json(review_report(view))
            return
        row = view.row
        for system, item, decision in view.recorded:
            ref = next((i.ref for i in view.items if (i.system, i.item) == (system, item)),
                       system)
            _line(f"{row.id}: {ref} ({item[:10]}) {decision}d")
        state = row.status.replace("_", " ") + (f", {row.outcome}" if row.outcome else "")
        undecided = sum(1 for i in view.items if i.decision is None)
        _line(f"{row.id} ({row.type}, {state}): {len(view.items)} review item(s), "
              f"{undecided} undecided")
        if not view.values:
            _line("the request has ended: its items' values were purged with it; only "
                  "their hashes and the decisions remain (as on its receipts)")
        for i in view.items:
            _show(i, view.values)
        for system, note in sorted(view.notes.items()):
            _line(f"{system}: {note}")
        if view.values and undecided:
            _line(f"decide with: erasure review {row.id} --include SYSTEM:N / --exclude "
                  "SYSTEM:N (undecided items leave their system partial)")


def _show(i: ReviewItem, values: bool) -> None:
    d = i.decision
    decided = f"{d.decision}d by {d.by} at {d.at}" if d else "undecided"
    _line(f"  {i.ref}  {i.item[:10]}  {i.kind or '-'}  {decided}")
    if values:
        for t, v, prov in i.matched:
            _line(f"      matched: {t} {v} ({prov})")
        if i.location:
            _line(f"      where: {i.location}")
        if i.fields:
            _line(f"      fields: {', '.join(i.fields)}")
        if i.related:
            _line("      holds: " + ", ".join(f"{t} {v}" for t, v in i.related))
    for r in i.reasons:
        _line(f"      why weak: {r}")


@app.command()
def plan(request_id: str, json_: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show the plan an approval covers: per system its action, policy, the items it acts
    on and the review items with their decisions; and the plan's hash."""
    from .review_report import plan_report

    with _orchestrator(config) as orch, _errors():
        view = orch.plan_of(request_id)
        if json_:
            _print_json(plan_report(view))
            return
        row = view.row
        table = compact_table(f"Plan of {row.id} ({row.type}, "
                              f"{row.status.replace('_', ' ')})")
        for col in ("system", "connector", "policy", "action", "stage", "items",
                    "review", "undecided", "included", "excluded", "note"):
            table.add_column(col)
        for s in view.systems:
            kinds = [i.decision.decision if i.decision else None for i in s.review]
            table.add_row(s.system, s.connector, s.policy, s.action, s.stage, str(s.items),
                          str(len(s.review)), str(kinds.count(None)),
                          str(kinds.count("include")), str(kinds.count("exclude")),
                          escape(s.note))
        out.print(table)
        for s in view.systems:
            for i in s.review:
                d = i.decision
                _line(f"  {i.ref}  {i.item[:10]}  "
                      + (f"{d.decision}d by {d.by}" if d else "undecided"))
        if view.plan_hash is None:
            _line("plan hash: none yet (a system is not searched yet)")
        else:
            _line(f"plan hash: {view.plan_hash}")
            if row.status == "awaiting_approval":
                _line(f"approve it with: erasure approve {row.id} --plan-hash "
                      f"{view.plan_hash}")


@app.command()
def approve(
    request_id: str,
    plan_hash: Annotated[str | None, typer.Option(
        "--plan-hash", help="Refuse unless the plan is still the one with this hash "
                            "(as `erasure plan` showed it).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Let a request that stopped after find (require_approval) go on; prints the hash of
    the plan approved (`erasure plan` shows it)."""
    with _orchestrator(config) as orch, _errors():
        approved = orch.approve(request_id, plan_hash)
        _line(f"{request_id} approved (plan hash {approved}); `erasure run` carries it out")
