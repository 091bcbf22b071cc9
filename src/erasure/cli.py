"""The ``erasure`` command line. It only parses options and calls the orchestrator.

Exit codes: 0 every system completed (or retained under policy), 1 some system failed,
was not covered or left residue, 2 usage or configuration error (nothing was done).

The request commands are here; receipts, systems, connectors, config, keys, discover and
demo are in cli_admin.py; what they share is in cli_common.py.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .cli_common import (
    AllowDuplicate,
    ConfigOpt,
    Corrections,
    Customers,
    DryRun,
    Emails,
    IdSpaceOpt,
    Ips,
    JsonOpt,
    Names,
    Override,
    Phones,
    ScopeOpt,
    Ticket,
    Users,
    Verified,
    _errors,
    _fail,
    _ident,
    _interruptible,
    _orchestrator,
    _spec,
    _summary_exit,
    app,
    err,
    national_phone,
    out,
    package_app,
    request_app,
)
from .errors import ErasureError
from .models import RequestType
from .tables import compact_table, receipts_table, tasks_table

__all__ = ["app", "main"]


@request_app.command("create")
def request_create(
    type: Annotated[RequestType, typer.Option("--type", help="Request type.")],
    email: Emails = None, phone: Phones = None, customer_id: Customers = None,
    user_id: Users = None, name: Names = None, ip: Ips = None, ticket: Ticket = None,
    verified: Verified = False, override_unverified: Override = None,
    received: Annotated[datetime | None, typer.Option(help="When it was received (UTC).")] = None,
    id_space: IdSpaceOpt = None,
    request_key: Annotated[str | None, typer.Option(
        "--request-key", help="Your own key for this request (a message id, no personal "
                              "data): recording the same key again returns the same request."
    )] = None,
    allow_duplicate: AllowDuplicate = False, corrections: Corrections = None,
    scope: ScopeOpt = None, config: ConfigOpt = None,
) -> None:
    """Record a request; `erasure run` processes it. The same request recorded again (same
    --request-key, or same ticket, type and identifiers) is the one recorded before."""
    from dataclasses import replace

    with _orchestrator(config, connectors=False) as orch, _errors():
        spec = replace(_spec(type, email, phone, customer_id, user_id, name, ip, ticket,
                             verified, override_unverified, received, id_space,
                             corrections, scope,
                             region=orch.config.host.default_phone_region),
                       request_key=request_key, allow_duplicate=allow_duplicate)
        orch.validate(spec)
        rid, new = orch.record(spec)
        if not new:
            err.print(f"recorded before as {rid}; not recorded again (--allow-duplicate "
                      "if the person really asked twice)")
            if spec.verified and not orch.get_request(rid).verified:
                err.print(f"{rid} is not marked verified: `erasure request verify {rid} "
                          "--method METHOD` records the check", highlight=False)
        out.print(rid)


@request_app.command("import")
def request_import(
    file: Annotated[Path, typer.Argument(help="A CSV file with a header row: its columns "
                                              "are listed above.")],
    allow_duplicate: AllowDuplicate = False, config: ConfigOpt = None,
) -> None:
    """Record many requests from a CSV file; all or none (a bad row names its line).

    Columns: type, email, phone, customer_id, user_id, name, ip, ticket, verified;
    optional: id_space, request_key."""
    import csv

    with _errors():
        try:
            rows = list(csv.DictReader(file.open(encoding="utf-8", newline="")))
        except OSError as exc:
            _fail(f"cannot read {file}: {exc.strerror or exc}")
    from .orchestrator import RequestSpec

    with _orchestrator(config, connectors=False) as orch, _errors():
        specs = []
        for n, row in enumerate(rows, start=2):
            try:
                rtype = RequestType((row.get("type") or "").strip())
            except ValueError:
                _fail(f"{file}:{n}: type must be one of {', '.join(t.value for t in RequestType)}")
            space = (row.get("id_space") or "").strip() or None
            region = orch.config.host.default_phone_region
            try:
                pairs = tuple(_ident(k, national_phone(v, region) if k == "phone" else v,
                                     space)
                              for k in ("email", "phone", "customer_id", "user_id", "name",
                                        "ip")
                              if (v := (row.get(k) or "").strip()))
            except ErasureError as exc:
                _fail(f"{file}:{n}: {exc}")
            verified = (row.get("verified") or "").strip().lower() in ("1", "true", "yes")
            specs.append(RequestSpec(rtype, pairs, ticket=(row.get("ticket") or "").strip() or None,
                                     verified=verified,
                                     request_key=(row.get("request_key") or "").strip() or None,
                                     allow_duplicate=allow_duplicate))
        # validated once, all before any is recorded; an error names its line
        before = orch.ledger.count_requests()
        ids = orch.submit_many(specs, labels=[f"{file}:{n}" for n in range(2, len(rows) + 2)])
        added = orch.ledger.count_requests() - before
        again = f" ({len(ids) - added} recorded before, not again)" if added < len(ids) else ""
        err.print(f"recorded {added} requests{again}; `erasure run` processes them")
        # One plain write: ten thousand lines through rich's renderer took seconds.
        sys.stdout.write("".join(f"{rid}\t{spec.ticket or ''}\n"
                                 for rid, spec in zip(ids, specs, strict=True)))


@request_app.command("verify")
def request_verify(
    request_id: str,
    method: Annotated[str, typer.Option(
        help="How the identity was checked, as a reference (e.g. id-document, "
             "callback:T-12): shown on the receipts, so no personal data.")],
    by: Annotated[str | None, typer.Option(
        help="Who checked it, as a reference (default: your login name).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Record that a recorded request's subject had their identity checked; a request
    that waited for it goes on at the next `erasure run`."""
    import getpass

    with _orchestrator(config, connectors=False) as orch, _errors():
        orch.verify(request_id, method, by or getpass.getuser())
        out.print(f"{request_id} verified ({method}); `erasure run` carries it out",
                  highlight=False, markup=False)


@request_app.command("extend")
def request_extend(
    request_id: str, reason: Annotated[str, typer.Option(
        help="Why more time is needed (kept encrypted, shredded with the request).")],
    months: Annotated[int, typer.Option(help="1 or 2 months.")] = 2, config: ConfigOpt = None,
) -> None:
    """Extend a request's deadline (GDPR Art. 12(3)); the reason is recorded."""
    with _orchestrator(config, connectors=False) as orch, _errors():
        due = orch.extend(request_id, months, reason)
        out.print(f"{request_id} now due {due:%Y-%m-%d}")


@package_app.command("get")
def package_get(
    request_id: str,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the package here (default: standard output, when "
                               "it is not a terminal).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Deliver the package of an access or portability request (a zip) and record it
    delivered; a package of a person erased since then is deleted once delivered."""
    with _orchestrator(config, connectors=False) as orch, _errors():
        if output is None:
            if sys.stdout.isatty():
                _fail("the package is a zip: give -o FILE, or redirect the output")
            row = orch.deliver_package(request_id, sys.stdout.buffer)
        else:
            import os

            try:
                # 0600 from the start, as every file the tool writes: an access package is
                # the person's data (an existing file is closed before anything is written)
                fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.fchmod(fd, 0o600)
            except OSError as exc:
                _fail(f"cannot write {output}: {exc.strerror or exc}")
            with os.fdopen(fd, "wb") as sink:
                row = orch.deliver_package(request_id, sink)
        gone = " (deleted now: the person has since been erased)" \
            if row["deleted_at"] is not None else ""
        err.print(f"{request_id}: package {row['file']} delivered{gone}", soft_wrap=True,
                  highlight=False, markup=False)


@app.command()
def confirm(
    request_id: str, system: str,
    reference: Annotated[str, typer.Option(help="The processor's confirmation reference "
                                                "(a case id matching ticket_pattern).")],
    config: ConfigOpt = None,
) -> None:
    """Record that a processor confirmed an erasure or restriction it was told of."""
    with _orchestrator(config) as orch, _errors():
        orch.confirm(request_id, system, reference)
        row = orch.get_request(request_id)
        out.print(f"{request_id} {system}: confirmed"
                  + (f"; request ended {row.outcome}" if row.status == "done" else ""))


@app.command()
def retry(request_id: str,
          system: Annotated[str | None, typer.Argument(help="Only this system.")] = None,
          config: ConfigOpt = None) -> None:
    """Resume a blocked task, re-open a failed one, or have items kept under a hold checked
    again (once it was lifted), of an open request; the next `erasure run` carries it
    out."""
    with _orchestrator(config) as orch, _errors():
        systems = orch.retry(request_id, system)
        out.print(f"{request_id}: re-opened {', '.join(systems)}; `erasure run` carries it out")


@app.command("close")
def close_request(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why it ends now (kept as a keyed hash on the "
                                             "receipts; keep the note in your ticket).")],
    config: ConfigOpt = None,
) -> None:
    """End an open request now: what is not done fails, receipts are written and its
    identifiers purged (e.g. a blocked system that will not be fixed in time)."""
    with _orchestrator(config) as orch, _errors():
        outcome = orch.close_request(request_id, reason)
        out.print(f"{request_id}: closed, {outcome}")
    raise typer.Exit(0)


@app.command()
def run(
    request: Annotated[list[str] | None, typer.Option(help="Only these request ids.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many requests.")] = None,
    json_: Annotated[bool, typer.Option(
        "--json", help="One JSON object on stdout (docs/run.schema.json).")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Say so when nothing was due (with the chain head), and "
                               "when this run created the local keys.")] = False,
    distributed: Annotated[bool, typer.Option(
        "--distributed", help="Send the due work to `erasure worker`s and return.")] = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="With --distributed: wait until the workers are done.")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0, metavar="SECONDS",
        help="With --wait: stop waiting after this long (exit 124, saying what is still "
             "queued or running; the workers go on).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Process every due request: a line per request on stdout, what needs an operator on
    stderr. Safe to run from cron, and two at once; with nothing due it prints nothing."""
    if verbose:  # info lines too, such as the keys a fresh state folder was given
        logging.getLogger("erasure.keys").setLevel(logging.INFO)
    with _orchestrator(config, contacts=True) as orch, _errors(), _interruptible():
        if request:
            for rid in request:
                orch.get_request(rid)
        if distributed or wait or timeout is not None:
            from .cli_distributed import run_distributed
            run_distributed(orch, request, limit, wait=wait, distributed=distributed,
                            json_=json_, verbose=verbose, timeout=timeout)
        summary = orch.run(only=request, limit=limit)
        # after the work, bounded: a receiver that is down never holds up a request
        orch.send_callbacks(orch.config.host.api.run_callback_seconds)
    doc = None
    if json_:
        from .reports import run_report

        doc = run_report(summary)
    _summary_exit(summary, verbose=verbose, json_doc=doc)


def _one_shot(rtype: RequestType, email: list[str] | None, phone: list[str] | None,
              customer_id: list[str] | None, user_id: list[str] | None,
              name: list[str] | None, ip: list[str] | None, ticket: str | None,
              verified: bool, override: str | None, dry_run: bool, config: Path | None,
              id_space: str | None = None, corrections: list[str] | None = None,
              scope: str | None = None, json_: bool = False) -> None:
    incomplete: list[tuple[str, str]] = []
    doc: dict[str, object] | None = None
    with _orchestrator(config, contacts=True) as orch, _errors():
        spec = _spec(rtype, email, phone, customer_id, user_id, name, ip, ticket, verified,
                     override, id_space=id_space, corrections=corrections, scope=scope,
                     region=orch.config.host.default_phone_region)
        if dry_run and json_:
            from .reports import plan_report

            lines = orch.plan(spec)
            _print_json(plan_report(rtype.value, lines))
            _unsearched([(line.system, line.unsearched) for line in lines
                         if line.unsearched])
        if dry_run:
            table = Table(title=f"Plan ({rtype.value}, dry run: nothing changed)")
            for col in ("system", "connector", "policy", "action", "found", "would act on",
                        "review only", "note"):
                table.add_column(col)
            lines = orch.plan(spec)
            for line in lines:
                spaces = f"id spaces: {', '.join(line.id_spaces)}" if line.id_spaces else ""
                counts = ((str(line.found), str(line.actionable), str(line.review))
                          if not line.unsearched else ("?", "?", "?"))
                table.add_row(line.system, line.connector, line.policy, line.action,
                              *counts, "; ".join(filter(None, [line.note, spaces])))
            out.print(table)
            # A system that could not be searched found nothing: the plan is incomplete.
            _unsearched([(line.system, line.unsearched) for line in lines
                         if line.unsearched])
        rid = orch.submit(spec)
        with _interruptible():
            summary = orch.run(only=[rid])
        if rtype is RequestType.FIND and rid not in summary.finished:
            # A find whose systems could not all be searched has no answer yet.
            incomplete = orch.unsearched(rid)
        if json_:
            from .reports import request_result

            doc = request_result(rid, rtype.value, summary, orch.ledger.receipts(rid),
                                 incomplete)
            _unsearched(incomplete, after="; the next `erasure run` searches again",
                        exit=False)
        elif summary.awaiting_approval:
            out.print(f"{rid}: found; awaiting approval (`erasure approve {rid}`)")
        elif rid not in summary.claimed:
            # another runner (serve's, a cron run, a worker) took it first: it finishes it
            out.print(f"{rid}: open; another run is working on it (`erasure status`)")
        elif rid not in summary.finished:
            out.print(f"{rid}: open; some systems finish later (`erasure status`)")
            _unsearched(incomplete, after="; the next `erasure run` searches again",
                        exit=False)
        else:
            out.print(receipts_table(orch.ledger.receipts(rid), title=f"Request {rid}"))
    _summary_exit(summary, failed=bool(incomplete), per_request=False, json_doc=doc)


def _unsearched(systems: list[tuple[str, str]], after: str = "", *, exit: bool = True
                ) -> None:
    """One line per system that could not be searched, on stderr; with ``exit``, exit 1
    if there is any (never "found 0", never success), else 0."""
    for name, reason in systems:
        err.print(f"{name}: could not be searched: {reason}{after}", soft_wrap=True,
                  highlight=False, markup=False)
    if exit:
        raise typer.Exit(1 if systems else 0)


def _shortcut(rtype: RequestType, doc: str) -> Callable[..., None]:
    def command(email: Emails = None, phone: Phones = None, customer_id: Customers = None,
                user_id: Users = None, name: Names = None, ip: Ips = None,
                ticket: Ticket = None, verified: Verified = False,
                override_unverified: Override = None, dry_run: DryRun = False,
                id_space: IdSpaceOpt = None, json_: JsonOpt = False,
                config: ConfigOpt = None) -> None:
        _one_shot(rtype, email, phone, customer_id, user_id, name, ip, ticket, verified,
                  override_unverified, dry_run, config, id_space, json_=json_)
    command.__doc__ = doc
    return command


app.command("find")(_shortcut(
    RequestType.FIND, "Find a subject's data in every system and count it; changes nothing."))
app.command("export")(_shortcut(
    RequestType.ACCESS, "Access (Art. 15): find the subject's data and write it as a package "
                        "(zip) to deliver with `erasure package get`."))
app.command("portability")(_shortcut(
    RequestType.PORTABILITY, "Portability (Art. 20): the data the subject gave, as a "
                             "machine-readable package (zip)."))
app.command("erase")(_shortcut(
    RequestType.ERASURE, "Erasure (Art. 17): find the subject's data in every system, erase "
                         "it and check that it is gone."))
app.command("restrict")(_shortcut(
    RequestType.RESTRICTION, "Restriction (Art. 18): find the subject's data and mark it "
                             "restricted in every system; deletes nothing."))


@app.command()
def rectify(corrections: Corrections = None, email: Emails = None, phone: Phones = None,
            customer_id: Customers = None, user_id: Users = None, name: Names = None,
            ip: Ips = None, ticket: Ticket = None, verified: Verified = False,
            override_unverified: Override = None, dry_run: DryRun = False,
            id_space: IdSpaceOpt = None, json_: JsonOpt = False,
            config: ConfigOpt = None) -> None:
    """Rectification (Art. 16): correct the person's email, phone, name or postal address
    in every system (--set email=new@example.org). The identifiers find the person; a
    correction of a value another person shares is refused, for review."""
    _one_shot(RequestType.RECTIFICATION, email, phone, customer_id, user_id, name, ip,
              ticket, verified, override_unverified, dry_run, config, id_space,
              corrections=corrections, json_=json_)


@app.command("object")
def object_(scope: ScopeOpt = None, email: Emails = None, phone: Phones = None,
            customer_id: Customers = None, user_id: Users = None, name: Names = None,
            ip: Ips = None, ticket: Ticket = None, verified: Verified = False,
            override_unverified: Override = None, dry_run: DryRun = False,
            id_space: IdSpaceOpt = None, json_: JsonOpt = False,
            config: ConfigOpt = None) -> None:
    """Objection (Art. 21): stop processing for direct marketing (--scope marketing, the
    default) or profiling in every system. Deletes nothing."""
    _one_shot(RequestType.OBJECTION, email, phone, customer_id, user_id, name, ip, ticket,
              verified, override_unverified, dry_run, config, id_space, scope=scope,
              json_=json_)


@app.command()
def status(all: Annotated[bool, typer.Option("--all", help="Finished ones too.")] = False,
           json_: Annotated[bool, typer.Option(
               "--json", help="One JSON object (docs/status.schema.json).")] = False,
           limit: Annotated[int, typer.Option(
               min=1, help="At most this many requests (the rest are counted).")] = 1000,
           config: ConfigOpt = None) -> None:
    """Open requests with days left; overdue ones marked."""
    # reads the ledger and the configuration only: no connector is imported (issue 26)
    with _orchestrator(config, connectors=False) as orch, _errors():
        if json_:
            from .reports import status_report

            _print_json(status_report(orch.ledger, finished_too=all, limit=limit,
                                      lease_seconds=orch.config.host.lease_seconds))
            return
        rows = orch.ledger.list_requests(open_only=not all, limit=limit)
        table = compact_table("Requests")
        for col in ("request", "ticket", "type", "status", "received", "due", "days left"):
            table.add_column(col, no_wrap=col not in ("ticket", "status"))
        from .ledger import days_left, utcnow
        now = utcnow()
        for r in rows:
            left = days_left(r.due_at, now)
            days = "-" if r.status == "done" else (
                f"[bold red]OVERDUE by {-left}[/]" if left < 0 else str(left))
            state = r.status if r.status != "done" else f"done: {r.outcome}"
            if r.extension_reason:
                state += " (extended)"
            table.add_row(r.id, r.ticket or "", r.type, state, f"{r.received_at:%Y-%m-%d}",
                          f"{r.due_at:%Y-%m-%d}", days)
        out.print(table)
        from .reports import requests_beyond

        more = requests_beyond(orch.ledger, len(rows), finished_too=all)
        if more:
            out.print(f"and {more} more (`erasure status --limit {len(rows) + more}`)",
                      highlight=False, markup=False)
        # the tasks of the requests listed (--limit 3: three requests' tasks)
        tasks = orch.ledger.open_tasks(requests=[r.id for r in rows])
        if tasks:
            due = {r.id: r.due_at for r in rows}
            due.update((t.request_id, orch.ledger.get_request(t.request_id).due_at)
                       for t in tasks if t.request_id not in due)
            requests = {r.id: r for r in rows}
            requests.update((rid, orch.ledger.get_request(rid)) for rid in due
                            if rid not in requests)
            out.print(tasks_table(tasks, due, requests))
        packages = orch.ledger.live_packages()
        if packages:
            table = compact_table("Packages (deleted when they expire; when the person is "
                                  "erased, once delivered)")
            for col in ("request", "file", "made (UTC)", "goes (UTC)", "waits for"):
                table.add_column(col, no_wrap=col != "waits for")
            for p in packages:
                table.add_row(p["request_id"], p["file"], f"{p['made_at']:%Y-%m-%d %H:%M}",
                              f"{p['expires_at']:%Y-%m-%d %H:%M}", _package_wait(p))
            out.print(table)
        from .cli_distributed import print_work
        # batches of `run --distributed`: queued; per worker, live or gone (heartbeats)
        print_work(orch.ledger, orch.config.host.lease_seconds)
        from .plugins import declared_retention
        from .reports import retention_rows

        # which connectors sweep: their distributions' metadata, not their modules
        swept = retention_rows(orch.config, orch.ledger,
                               declared_retention() - orch.plugins.blocked)
        if swept:
            table = compact_table("Retention sweeps")
            for col in ("system", "last swept (UTC)", "outcome", "oldest item"):
                table.add_column(col)
            for row in swept:
                table.add_row(*row)
            out.print(table)


def _print_json(value: object) -> None:
    """One JSON document on stdout, never wrapped or coloured."""
    import json

    sys.stdout.write(json.dumps(value, ensure_ascii=False, sort_keys=True) + "\n")


def _package_wait(p: dict[str, object]) -> str:
    """What a live package waits for, in words."""
    if p["subject_erased_at"] is not None:
        return f"delivery (`erasure package get {p['request_id']}`); the person is erased"
    if p["delivered_at"] is None:
        return f"delivery (`erasure package get {p['request_id']}`) or expiry"
    return f"expiry (delivered {p['delivered_at']:%Y-%m-%d %H:%M})"


@app.command()
def sweep(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; change "
                                                            "nothing.")] = False,
    system: Annotated[list[str] | None, typer.Option(help="Only these systems.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Delete items past each system's retention; a signed receipt per system. Safe to run
    from cron daily (a system being swept by another process is skipped)."""
    from .sweep import run_sweep

    with _orchestrator(config) as orch, _errors():
        for name in system or ():
            if name not in orch.systems:
                _fail(f"no system {name!r} in the configuration")
        results = run_sweep(orch, dry_run=dry_run, only=system)
        table = compact_table("Retention sweep" + (" (dry run: nothing changed)"
                                                   if dry_run else ""))
        for col in ("system", "folder/table", "expired", "deleted", "failed", "outcome"):
            table.add_column(col, overflow="fold")
        for r in results:
            groups = sorted(r.groups.items()) or [("-", {"expired": 0, "deleted": 0,
                                                         "failed": 0})]
            for group, c in groups:
                table.add_row(r.system, escape(group), str(c["expired"]),
                              "-" if dry_run else str(c["deleted"]),
                              "-" if dry_run else str(c["failed"]),
                              r.outcome + (f" ({escape(r.note)})" if r.note else ""))
        out.print(table)
        written = sorted({r.sweep_id for r in results if r.receipt_seq is not None})
        if written:
            out.print(f"receipts: erasure receipts show {written[0]}")
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


# receipts ------------------------------------------------------------------------------


# registers the receipts, systems, connectors, config, keys, discover and demo commands,
# serve, tokens (the HTTP API); review, plan and approve; new-connector; worker
from . import cli_admin, cli_api, cli_distributed, cli_review, cli_scaffold  # noqa: E402, F401


def main() -> None:
    """Console-script entry point."""

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    from .runtime import tune_gc_for_batches
    tune_gc_for_batches()
    sys.exit(run_app(sys.argv[1:]))


def run_app(args: list[str]) -> int:
    """Run the command line on ``args``; its exit code. A usage error (an unknown option, a
    value of the wrong type) is one line on stderr naming the problem, exit 2, like every
    other error of bad input (not typer's framed box)."""
    import typer

    # typer's own click (vendored or not) raises these; their common base, found by name
    usage: type[Exception] = next(c for c in typer.BadParameter.__mro__
                                  if c.__name__ == "ClickException")
    try:
        code = app(args=args, prog_name="erasure", standalone_mode=False)
    except usage as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            out.print(ctx.get_help(), highlight=False, markup=False)
            return 0
        message = " ".join(getattr(exc, "format_message", exc.__str__)().split())
        hint = f" (`{ctx.command_path} --help`)" if ctx is not None else ""
        err.print(f"error: {message}{hint}", soft_wrap=True, highlight=False, markup=False)
        return int(getattr(exc, "exit_code", 2))
    except typer.Abort:
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
