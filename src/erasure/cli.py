"""The ``erasure`` command line. It only parses options and calls the orchestrator.

Exit codes: 0 every system completed (or retained under policy), 1 some system failed,
was not covered or left residue, 2 usage or configuration error (nothing was done).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from .errors import ErasureError
from .models import RequestType
from .tables import compact_table, receipts_table, tasks_table

if TYPE_CHECKING:
    from .config import Config
    from .orchestrator import Orchestrator, RequestSpec, RunSummary
    from .plugins import PluginHost

# The rest of the package (SQLAlchemy, pydantic, cryptography behind it) is imported by the
# commands that need it: `erasure --help` and bad input answer without loading it.

__all__ = ["app", "main"]

out = Console()
err = Console(stderr=True)
app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.split("\n")[0])
request_app = typer.Typer(no_args_is_help=True, help="Create and manage requests.")
receipts_app = typer.Typer(no_args_is_help=True, help="Show, verify and export receipts.")
systems_app = typer.Typer(no_args_is_help=True, help="Configured systems.")
connectors_app = typer.Typer(no_args_is_help=True, help="Installed connectors.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration.")
keys_app = typer.Typer(no_args_is_help=True, help="Signing and encryption keys.")
for sub, name in [(request_app, "request"), (receipts_app, "receipts"), (systems_app, "systems"),
                  (connectors_app, "connectors"), (config_app, "config"), (keys_app, "keys")]:
    app.add_typer(sub, name=name)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (default: $ERASURE_CONFIG).")
]
Emails = Annotated[list[str] | None, typer.Option("--email", help="Email address (repeatable).")]
Phones = Annotated[list[str] | None, typer.Option("--phone", help="Phone, international format.")]
Customers = Annotated[list[str] | None, typer.Option("--customer-id", help="Customer id.")]
Users = Annotated[list[str] | None, typer.Option("--user-id", help="User id.")]
Names = Annotated[list[str] | None, typer.Option("--name", help="Full name (weak identifier).")]
Ips = Annotated[list[str] | None, typer.Option("--ip", help="IP address (weak identifier).")]
AllowDuplicate = Annotated[bool, typer.Option(
    "--allow-duplicate", help="Record even a request recorded before (the person asked twice).")]
Ticket = Annotated[str | None, typer.Option("--ticket", help="Ticket id the request came from.")]
IdSpaceOpt = Annotated[
    str | None,
    typer.Option("--id-space", help="Id space of --customer-id/--user-id (default: the "
                                    "config's for the type)."),
]
Verified = Annotated[bool, typer.Option("--verified", help="The subject's identity was checked.")]
Override = Annotated[
    str | None,
    typer.Option("--override-unverified", help="Erase without verified identity; the reason."),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ErasureError as exc:
        _fail(str(exc))
    except Exception as exc:
        # The ledger's database went away (a PostgreSQL restart, a network cut): every step
        # is saved as it goes, so this run stops and the next one resumes.
        if type(exc).__module__.startswith("sqlalchemy") and \
                type(exc).__name__ in ("OperationalError", "InterfaceError", "DisconnectionError"):
            _fail(f"the ledger database is unavailable ({type(exc).__name__}); what was done "
                  "is saved: run again when it is back", code=1)
        raise


def _load(config: Path | None) -> tuple[Config, PluginHost]:
    from .config import load_config
    from .plugins import PluginHost

    plugins = PluginHost.load()
    for f in plugins.failures:
        err.print(f"[yellow]warning:[/] plugin {f.plugin} failed to load: {f.error}")
    uncovered = frozenset(f.plugin for f in plugins.failures) | plugins.blocked
    cfg = load_config(config, known_connectors={n: plugins.registry.get(n)
                                                for n in plugins.registry.names()},
                      uncovered=uncovered)
    return cfg, plugins


def _progress(p: Progress) -> Callable[[str, int, int], None]:
    task_ids: dict[str, Any] = {}

    def update(what: str, done: int, total: int) -> None:
        if what not in task_ids:
            task_ids[what] = p.add_task(what, total=total)
        p.update(task_ids[what], completed=done, total=total)
    return update


@contextmanager
def _orchestrator(config: Path | None) -> Iterator[Orchestrator]:
    from .orchestrator import Orchestrator

    with _errors():
        cfg, plugins = _load(config)
        # Bars only on a terminal: piped or logged (cron), a transient bar leaves blank lines.
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            console=err, transient=True) if err.is_terminal else None
        orch = Orchestrator(cfg, plugins,
                            progress=_progress(progress) if progress is not None else None)
        try:
            with progress if progress is not None else nullcontext():
                yield orch
        finally:
            orch.close()


def _spec(rtype: RequestType, email: list[str] | None, phone: list[str] | None,
          customer_id: list[str] | None, user_id: list[str] | None, name: list[str] | None,
          ip: list[str] | None, ticket: str | None, verified: bool, override: str | None,
          received: datetime | None = None, id_space: str | None = None) -> RequestSpec:
    from .orchestrator import RequestSpec

    pairs = [_ident(t, v, id_space) for t, vs in (
        ("email", email), ("phone", phone), ("customer_id", customer_id), ("user_id", user_id),
        ("name", name), ("ip", ip)) for v in vs or ()]
    return RequestSpec(type=rtype, identifiers=tuple(pairs), ticket=ticket, verified=verified,
                       override_unverified=override, received_at=received)


def _ident(itype: str, value: str, id_space: str | None) -> tuple[str, str] | tuple[str, str, str]:
    """An identifier pair; ids (customer, user) carry the id space when one is named."""
    if id_space and itype in ("customer_id", "user_id"):
        return (itype, value, id_space)
    return (itype, value)


def _summary_exit(summary: RunSummary) -> None:
    if summary.replanned:
        err.print(f"{len(summary.replanned)} approved request(s) now find a different set of "
                  "items than was approved; nothing was done to them: review and approve again")
    if summary.awaiting_approval:
        err.print(f"{len(summary.awaiting_approval)} request(s) await approval: "
                  f"`erasure approve REQUEST`")
    if summary.outcomes:
        parts = ", ".join(f"{n} {o}" for o, n in sorted(summary.outcomes.items()))
        err.print(f"finished {len(summary.finished)} request(s): {parts}")
    if summary.waiting:
        parts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(summary.waiting.items()))
        err.print(f"tasks left for a later run: {parts} (`erasure status`)")
    if summary.failed_tasks:
        err.print(f"{summary.failed_tasks} task(s) failed (`erasure status`, `erasure retry`)")
    for rid, password in sorted(summary.package_passwords.items()):
        # stdout, once: the password is stored nowhere, so it is given to the caller
        out.print(f"package of {rid}: password {password} (shown once; give it to the "
                  "person by another channel than the package)", highlight=False)
    if summary.head is not None:
        # One line to publish: `erasure receipts verify --expect-head HASH` checks against it.
        from .heads import head_line

        err.print(head_line(*summary.head), soft_wrap=True, highlight=False)
    raise typer.Exit(0 if summary.ok else 1)


# requests ------------------------------------------------------------------------------

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
    allow_duplicate: AllowDuplicate = False, config: ConfigOpt = None,
) -> None:
    """Record a request; `erasure run` processes it. The same request recorded again (same
    --request-key, or same ticket, type and identifiers) is the one recorded before."""
    from dataclasses import replace

    with _orchestrator(config) as orch, _errors():
        spec = replace(_spec(type, email, phone, customer_id, user_id, name, ip, ticket,
                             verified, override_unverified, received, id_space),
                       request_key=request_key, allow_duplicate=allow_duplicate)
        orch.validate(spec)
        before = orch.ledger.count_requests()
        rid = orch.submit(spec)
        if orch.ledger.count_requests() == before:
            err.print(f"recorded before as {rid}; not recorded again (--allow-duplicate "
                      "if the person really asked twice)")
        out.print(rid)


@request_app.command("import")
def request_import(
    file: Annotated[Path, typer.Argument(help="CSV: type,email,phone,customer_id,user_id,"
                                              "name,ip,ticket,verified[,id_space]"
                                              "[,request_key]")],
    allow_duplicate: AllowDuplicate = False, config: ConfigOpt = None,
) -> None:
    """Record many requests from a CSV file; all or none (a bad row names its line)."""
    import csv

    with _errors():
        try:
            rows = list(csv.DictReader(file.open(encoding="utf-8", newline="")))
        except OSError as exc:
            _fail(f"cannot read {file}: {exc.strerror or exc}")
    from .orchestrator import RequestSpec

    with _orchestrator(config) as orch, _errors():
        specs = []
        for n, row in enumerate(rows, start=2):
            try:
                rtype = RequestType((row.get("type") or "").strip())
            except ValueError:
                _fail(f"{file}:{n}: type must be one of {', '.join(t.value for t in RequestType)}")
            space = (row.get("id_space") or "").strip() or None
            pairs = tuple(_ident(k, v, space) for k in ("email", "phone", "customer_id",
                                                        "user_id", "name", "ip")
                          if (v := (row.get(k) or "").strip()))
            verified = (row.get("verified") or "").strip().lower() in ("1", "true", "yes")
            specs.append(RequestSpec(rtype, pairs, ticket=(row.get("ticket") or None),
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


@request_app.command("extend")
def request_extend(
    request_id: str, reason: Annotated[str, typer.Option(help="Why more time is needed.")],
    months: Annotated[int, typer.Option(help="1 or 2 months.")] = 2, config: ConfigOpt = None,
) -> None:
    """Extend a request's deadline (GDPR Art. 12(3)); the reason is recorded."""
    with _orchestrator(config) as orch, _errors():
        due = orch.extend(request_id, months, reason)
        out.print(f"{request_id} now due {due:%Y-%m-%d}")


@app.command()
def approve(request_id: str, config: ConfigOpt = None) -> None:
    """Let a request that stopped after find (require_approval) go on."""
    with _orchestrator(config) as orch, _errors():
        orch.approve(request_id)
        out.print(f"{request_id} approved; `erasure run` carries it out")


@app.command()
def confirm(
    request_id: str, system: str,
    reference: Annotated[str, typer.Option(help="The processor's confirmation reference "
                                                "(a ticket or message id; no personal data).")],
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
    """Re-open a failed task of an open request; the next `erasure run` tries it again."""
    with _orchestrator(config) as orch, _errors():
        systems = orch.retry(request_id, system)
        out.print(f"{request_id}: re-opened {', '.join(systems)}; `erasure run` carries it out")


@app.command()
def run(
    request: Annotated[list[str] | None, typer.Option(help="Only these request ids.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many requests.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Process every open request. Safe to run from cron, and two at once."""
    with _orchestrator(config) as orch, _errors():
        if request:
            for rid in request:
                orch.get_request(rid)
        summary = orch.run(only=request, limit=limit)
    _summary_exit(summary)


def _one_shot(rtype: RequestType, email: list[str] | None, phone: list[str] | None,
              customer_id: list[str] | None, user_id: list[str] | None,
              name: list[str] | None, ip: list[str] | None, ticket: str | None,
              verified: bool, override: str | None, dry_run: bool, config: Path | None,
              id_space: str | None = None) -> None:
    with _orchestrator(config) as orch, _errors():
        spec = _spec(rtype, email, phone, customer_id, user_id, name, ip, ticket, verified,
                     override, id_space=id_space)
        if dry_run:
            table = Table(title=f"Plan ({rtype.value}, dry run: nothing changed)")
            for col in ("system", "connector", "policy", "action", "found", "would act on",
                        "review only", "note"):
                table.add_column(col)
            for line in orch.plan(spec):
                spaces = f"id spaces: {', '.join(line.id_spaces)}" if line.id_spaces else ""
                table.add_row(line.system, line.connector, line.policy, line.action,
                              str(line.found), str(line.actionable), str(line.review),
                              "; ".join(filter(None, [line.note, spaces])))
            out.print(table)
            raise typer.Exit(0)
        rid = orch.submit(spec)
        summary = orch.run(only=[rid])
        if summary.awaiting_approval:
            out.print(f"{rid}: found; awaiting approval (`erasure approve {rid}`)")
        elif rid not in summary.finished:
            out.print(f"{rid}: open; some systems finish later (`erasure status`)")
        else:
            out.print(receipts_table(orch.ledger.receipts(rid), title=f"Request {rid}"))
    _summary_exit(summary)


def _shortcut(rtype: RequestType, doc: str) -> Callable[..., None]:
    def command(email: Emails = None, phone: Phones = None, customer_id: Customers = None,
                user_id: Users = None, name: Names = None, ip: Ips = None,
                ticket: Ticket = None, verified: Verified = False,
                override_unverified: Override = None, dry_run: DryRun = False,
                id_space: IdSpaceOpt = None, config: ConfigOpt = None) -> None:
        _one_shot(rtype, email, phone, customer_id, user_id, name, ip, ticket, verified,
                  override_unverified, dry_run, config, id_space)
    command.__doc__ = doc
    return command


app.command("find")(_shortcut(RequestType.FIND, "Find a subject's data in every system."))
app.command("export")(_shortcut(RequestType.ACCESS, "Access request: find and export (zip)."))
app.command("portability")(_shortcut(RequestType.PORTABILITY, "Portability export (zip)."))
app.command("erase")(_shortcut(RequestType.ERASURE, "Erasure request: find, erase, verify."))
app.command("restrict")(_shortcut(RequestType.RESTRICTION, "Restrict processing (Art. 18)."))


@app.command()
def status(all: Annotated[bool, typer.Option("--all", help="Finished ones too.")] = False,
           config: ConfigOpt = None) -> None:
    """Open requests with days left; overdue ones marked."""
    with _orchestrator(config) as orch, _errors():
        rows = orch.ledger.list_requests(open_only=not all)
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
        tasks = orch.ledger.open_tasks()
        if tasks:
            out.print(tasks_table(tasks, orch.config.host.confirmation_reminder_days))
        packages = orch.ledger.live_packages()
        if packages:
            table = compact_table("Packages (deleted when they expire, or at once when the "
                                  "person's erasure completes)")
            for col in ("request", "file", "made (UTC)", "goes (UTC)"):
                table.add_column(col, no_wrap=True)
            for p in packages:
                table.add_row(p["request_id"], p["file"], f"{p['made_at']:%Y-%m-%d %H:%M}",
                              f"{p['expires_at']:%Y-%m-%d %H:%M}")
            out.print(table)
        from .sweep import retention_status
        swept = retention_status(orch)
        if swept:
            table = compact_table("Retention sweeps")
            for col in ("system", "last swept (UTC)", "outcome", "oldest item"):
                table.add_column(col)
            for row in swept:
                table.add_row(*row)
            out.print(table)


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
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


# receipts ------------------------------------------------------------------------------

@receipts_app.command("show")
def receipts_show(request_id: str, config: ConfigOpt = None) -> None:
    """Print a request's receipts as a table."""
    with _orchestrator(config) as orch, _errors():
        orch.get_request(request_id)
        out.print(receipts_table(orch.ledger.receipts(request_id), title=f"Request {request_id}"))


@receipts_app.command("export")
def receipts_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="JSON file to write.")],
    request: Annotated[str | None, typer.Option(
        help="Only this request's receipts (verify with --subset).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Write receipts, the signed chain head and the public key as JSON (docs/receipts.md)."""
    from .heads import export

    with _orchestrator(config) as orch, _errors():
        if request:
            orch.get_request(request)
        data = export(orch.ledger, orch.keys, request)
        # receipts hold no personal data, but who asked when is the tool's owner's business
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True))
        output.chmod(0o600)  # an existing file keeps its mode through O_CREAT
        err.print(f"wrote {len(data['receipts'])} receipts to {output}")


@receipts_app.command("verify")
def receipts_verify(
    file: Annotated[Path | None, typer.Option(help="Exported receipts (offline).")] = None,
    public_key: Annotated[str | None, typer.Option(help="Public key (base64), or a file.")] = None,
    expect_head: Annotated[str | None, typer.Option(
        "--expect-head", metavar="HASH",
        help="A chain head published elsewhere (`chain head: N HASH`): must be in the chain.",
    )] = None,
    subset: Annotated[bool, typer.Option(
        "--subset", help="The file holds a selection (export --request): check each "
                         "receipt's hash and signature only, not that none is missing.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Check every signature, the hash chain and its signed head. Offline with --file and
    --public-key. Nothing in the file changes what is checked."""
    from .heads import ledger_export, verify_export
    from .keys import public_key_from_text

    with _errors():
        key_text = public_key
        if key_text and Path(key_text).is_file():
            key_text = Path(key_text).read_text(encoding="utf-8")
        if file is not None:
            if key_text is None:
                _fail("--public-key is needed with --file (the key in the file proves nothing)")
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                _fail(f"cannot read receipts file {file}: {exc}")
        else:
            with _orchestrator(config) as orch:
                data = ledger_export(orch.ledger)
                key_text = key_text or orch.keys.public_text
        if subset and expect_head is not None:
            _fail("--expect-head checks a whole chain; it cannot be used with --subset")
        verdict = verify_export(data, public_key_from_text(key_text or ""), subset=subset,
                                expect_head=expect_head)
    if not verdict.ok:
        more = len(verdict.problems) - 1
        err.print(f"FAILED: {verdict.problems[0]}" + (f" (and {more} more)" if more else ""),
                  soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(1)
    out.print(f"OK: {verdict.summary}", soft_wrap=True, highlight=False, markup=False)
    for note in verdict.notes:
        out.print(f"note: {note}", soft_wrap=True, highlight=False, markup=False)


# systems, connectors, config, keys -----------------------------------------------------

@systems_app.command("list")
def systems_list(config: ConfigOpt = None) -> None:
    """Configured systems, their connector and policy."""
    with _orchestrator(config) as orch:
        table = Table(title="Systems")
        for col in ("system", "connector", "version", "policy", "status"):
            table.add_column(col)
        for name, s in orch.systems.items():
            table.add_row(name, s.config.connector, s.version, s.config.policy.value,
                          f"[red]not covered: {s.uncovered}[/]" if s.uncovered else "ok")
        out.print(table)


@systems_app.command("check")
def systems_check(
    config: ConfigOpt = None,
    deep: Annotated[bool, typer.Option(
        "--deep", help="Also search beyond each mapping for strong identifiers (connectors "
                       "that can); of the given subject, or else of anyone mapped.")] = False,
    email: Emails = None, phone: Phones = None,
) -> None:
    """Check that every system is reachable and has the permissions it needs."""
    with _orchestrator(config) as orch:
        problems = orch.check_systems()
        found: dict[str, list[str]] = {}
        if deep:
            with _errors():
                found = _deep_check(orch, email or [], phone or [], problems)
    from .files import too_open

    host = orch.config.host
    wide = too_open(host.state_dir) + [
        f"{host.exports()}: {p}" for p in too_open(host.exports())
        if host.export_dir is not None]
    for path in wide[:20]:
        err.print(f"warning: {path} can be read by others than its owner "
                  "(folders should be 0700, files 0600)")
    for name, problem in problems.items():
        lines = found.get(name, [])
        if problem:
            out.print(f"{name}: [red]{problem}[/]")
        elif lines:
            out.print(f"{name}: [red]reachable; {len(lines)} places beyond its mapping hold "
                      "strong identifiers[/]")
        else:
            out.print(f"{name}: [green]ok[/]")
        for line in lines:
            out.print(f"  {name}: [red]{escape(line)}[/]")
    raise typer.Exit(1 if any(problems.values()) or any(found.values()) else 0)


def _deep_check(orch: Orchestrator, emails: list[str], phones: list[str],
                problems: dict[str, str | None]) -> dict[str, list[str]]:
    """Per system, the places beyond its mapping holding strong identifiers (see
    ``Connector.deep_check``); systems that cannot search say so in ``problems``."""
    from .errors import CapabilityNotSupported
    from .models import Identifier, IdentifierType, Subject

    idents = tuple([Identifier.parse(IdentifierType.EMAIL, e) for e in emails]
                   + [Identifier.parse(IdentifierType.PHONE, p) for p in phones])
    subjects = [Subject("deep-check", idents)] if idents else []
    found: dict[str, list[str]] = {}
    for name, s in orch.systems.items():
        if problems.get(name):
            continue
        try:
            found[name] = s.connector().deep_check(subjects)
        except CapabilityNotSupported:
            continue
        except ErasureError as exc:
            problems[name] = f"deep check: {exc}"
    return found


@connectors_app.command("list")
def connectors_list() -> None:
    """Installed connectors and the plugins that failed to load."""
    from .plugins import PluginHost
    plugins = PluginHost.load()
    table = Table(title="Connectors")
    for col in ("connector", "version", "capabilities", "plugin"):
        table.add_column(col)
    for n in plugins.registry.names():
        cls = plugins.registry.get(n)
        assert cls is not None
        table.add_row(n, cls.version, ", ".join(sorted(c.value for c in cls.capabilities)),
                      plugins.registry.origin(n))
    out.print(table)
    for f in plugins.failures:
        out.print(f"[red]plugin {f.plugin} failed to load:[/] {f.error}")


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the configuration and report every problem at once."""
    with _errors():
        cfg, plugins = _load(config)
    out.print(f"[green]OK[/]: {len(cfg.systems)} systems in {cfg.path}")
    for name, s in cfg.systems.items():
        if s.connector not in plugins.registry:
            out.print(f"[yellow]{name}: not covered: {plugins.failure_for(s.connector)}[/]")


@keys_app.command("show-public")
def keys_show_public(config: ConfigOpt = None) -> None:
    """Print the public key that verifies receipts."""
    with _orchestrator(config) as orch:
        out.print(orch.keys.public_text)


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new signing and encryption key, for env variables in production."""
    from .keys import generate_keys
    signing, enc = generate_keys()
    out.print(f"ERASURE_SIGNING_KEY={signing}\nERASURE_ENCRYPTION_KEY={enc}")


@app.command()
def discover(
    system: str, config: ConfigOpt = None,
    write: Annotated[Path | None, typer.Option(
        "--write", help="Write the proposed [systems.SYSTEM] section to this new file.")] = None,
) -> None:
    """Propose a mapping for a system (TOML on stdout) for a person to review.

    The proposal is a whole [systems.SYSTEM] section: review it, then let it replace the
    section it came from. The system may map no table yet.
    """
    from .connector import validating_for

    if write is not None and write.exists():
        _fail(f"{write} exists; discover writes a new file")
    with validating_for("discover"), _orchestrator(config) as orch, _errors():
        if system not in orch.systems:
            _fail(f"no system {system!r} in the configuration")
        s = orch.systems[system]
        if s.uncovered:
            _fail(f"system {system!r} is not covered: {s.uncovered}")
        try:
            text = s.connector().discover()
        except ErasureError as exc:
            _fail(f"{system}: {exc}")
        if write is None:
            sys.stdout.write(text)
            return
        write.write_text(text, encoding="utf-8")
        out.print(f"wrote the proposed section of {system} to {write}")


@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Where the demo keeps its state.")] = Path(
        ".erasure-demo"),
) -> None:
    """Seed local systems and run find, export and erase for a sample subject."""
    from .demo import run_demo

    with _errors():
        code = run_demo(folder, out)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    from .runtime import tune_gc_for_batches
    tune_gc_for_batches()
    app()


if __name__ == "__main__":
    main()
