"""What the ``erasure`` commands share: the Typer apps, option types, consoles, error
handling and the orchestrator they open (the commands are in cli.py and cli_admin.py)."""

from __future__ import annotations

import json
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

from .errors import ErasureError
from .models import RequestType

if TYPE_CHECKING:
    from .config import Config
    from .orchestrator import Orchestrator, RequestSpec, RunSummary
    from .plugins import PluginHost

# The rest of the package (SQLAlchemy, pydantic, cryptography behind it) is imported by the
# commands that need it: `erasure --help` and bad input answer without loading it.


def _stdout() -> Console:
    """Rich's console for stdout: piped (a file, grep, cron mail) it would cut tables at 80
    columns, so lines are as long as they need to be unless COLUMNS says otherwise."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=10_000)


out = _stdout()
# stderr is one line per message, never wrapped at the console's width: piped (cron mail,
# `2>&1 | grep`) a wrapped warning or error would read as two
err = Console(stderr=True, soft_wrap=True)
app = typer.Typer(
    no_args_is_help=True, add_completion=False,
    # a crash prints a plain traceback: typer's pretty one shows local variables, which
    # may hold identifiers (personal data)
    pretty_exceptions_enable=False,
    help="GDPR data-subject requests (access, portability, erasure, restriction, "
         "rectification, objection) carried out in every configured system, with signed "
         "receipts. Exit codes: 0 done, 1 some system failed or is not done, 2 bad input "
         "or configuration (nothing was done).")


def _version(value: bool) -> None:
    if value:
        import erasure

        sys.stdout.write(f"erasure {erasure.__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    # The app's help is set above; a callback's docstring would replace it.
    pass


request_app = typer.Typer(no_args_is_help=True, help="Create and manage requests.")
receipts_app = typer.Typer(no_args_is_help=True, help="Show, verify and export receipts.")
systems_app = typer.Typer(no_args_is_help=True, help="Configured systems.")
connectors_app = typer.Typer(no_args_is_help=True, help="Installed connectors.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration.")
keys_app = typer.Typer(no_args_is_help=True, help="Signing and encryption keys.")
package_app = typer.Typer(no_args_is_help=True, help="Access and portability packages.")
for sub, name in [(request_app, "request"), (receipts_app, "receipts"), (systems_app, "systems"),
                  (connectors_app, "connectors"), (config_app, "config"), (keys_app, "keys"),
                  (package_app, "package")]:
    app.add_typer(sub, name=name)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (default: $ERASURE_CONFIG).")
]
Emails = Annotated[list[str] | None, typer.Option("--email", help="Email address (repeatable).")]
Phones = Annotated[list[str] | None, typer.Option(
    "--phone", help="Phone (repeatable): international format, or national with [erasure] "
                    "default_phone_region.")]
Customers = Annotated[list[str] | None, typer.Option("--customer-id", help="Customer id.")]
Users = Annotated[list[str] | None, typer.Option("--user-id", help="User id.")]
Names = Annotated[list[str] | None, typer.Option("--name", help="Full name (weak identifier).")]
Ips = Annotated[list[str] | None, typer.Option("--ip", help="IP address (weak identifier).")]
AllowDuplicate = Annotated[bool, typer.Option(
    "--allow-duplicate", help="Record even a request recorded before (the person asked twice).")]
Ticket = Annotated[str | None, typer.Option(
    "--ticket", help="Ticket reference the request came from (letters, digits, -_.:#/).")]
IdSpaceOpt = Annotated[
    str | None,
    typer.Option("--id-space", help="Id space of --customer-id/--user-id (default: the "
                                    "config's for the type)."),
]
Verified = Annotated[bool, typer.Option(
    "--verified", help="The subject's identity was checked (needed by every type but find "
                       "and objection; `erasure request verify` records how).")]
Override = Annotated[
    str | None,
    typer.Option("--override-unverified", help="Go on without a verified identity; the "
                                              "reason (kept encrypted; receipts show its "
                                              "hash)."),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="One JSON object on stdout (docs/request-result.schema.json).")]
Corrections = Annotated[list[str] | None, typer.Option(
    "--set", help="Rectification: a correct value, TYPE=VALUE with TYPE one of email, phone, "
                  "name, address (repeatable).")]
ScopeOpt = Annotated[str | None, typer.Option(
    "--scope", help="Objection: the processing objected to, marketing (default) or "
                    "profiling.")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ErasureError as exc:
        _fail(str(exc), code=getattr(exc, "exit_code", 2))
    except Exception as exc:
        # The ledger's database went away (a PostgreSQL restart, a network cut): every step
        # is saved as it goes, so this run stops and the next one resumes.
        if type(exc).__module__.startswith("sqlalchemy") and \
                type(exc).__name__ in ("OperationalError", "InterfaceError", "DisconnectionError"):
            _fail(f"the ledger database is unavailable ({type(exc).__name__}); what was done "
                  "is saved: run again when it is back", code=1)
        raise


def _load(config: Path | None, *, connectors: bool = True, strict: bool = False
          ) -> tuple[Config, PluginHost]:
    """The configuration and the plugins. Without ``connectors``, no connector is imported
    (a command that contacts no system: receipts, request, approve...) and the systems'
    settings are not checked against them. Unless ``strict`` (``config check``), a
    system's secret that is not set fails only a command that contacts that system, and a
    plugin that failed to load is warned about here (``config check`` names each failure
    once itself: as the error of the systems it leaves uncovered, else as a warning)."""
    from .config import load_config
    from .plugins import PluginHost

    plugins = PluginHost.load(entry_points=connectors)
    if not strict:
        for f in plugins.failures:
            err.print(f"[yellow]warning:[/] plugin {f.plugin} failed to load: {f.error}")
    uncovered = frozenset(f.plugin for f in plugins.failures) | plugins.blocked
    cfg = load_config(config, known_connectors=plugins.registry.classes() if connectors
                      else None, uncovered=uncovered, defer_secrets=not strict)
    return cfg, plugins


def _require_secrets(orch: Orchestrator) -> None:
    """Before a command that may contact every system (run, erase...): a secret that is
    not set stops it, one line naming the variable, nothing done."""
    unset = [line for s in orch.systems.values() for line in s.config.unset]
    if unset:
        more = (f" (and {len(unset) - 1} more: `erasure config check` lists them)"
                if len(unset) > 1 else "")
        _fail(unset[0] + more)


def _progress(p: Progress) -> Callable[[str, int, int], None]:
    task_ids: dict[str, Any] = {}

    def update(what: str, done: int, total: int) -> None:
        if what not in task_ids:
            task_ids[what] = p.add_task(what, total=total)
        p.update(task_ids[what], completed=done, total=total)
    return update


@contextmanager
def _orchestrator(config: Path | None, *, connectors: bool = True,
                  contacts: bool = False) -> Iterator[Orchestrator]:
    """The orchestrator of the configuration; ``connectors=False`` for a command that
    contacts no system (see :func:`_load`), ``contacts`` for one that may contact every
    system (its secrets must all be set)."""
    from .orchestrator import Orchestrator

    with _errors():
        cfg, plugins = _load(config, connectors=connectors)
        # Bars only on a terminal: piped or logged (cron), a transient bar leaves blank lines.
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            console=err, transient=True) if err.is_terminal else None
        orch = Orchestrator(cfg, plugins,
                            progress=_progress(progress) if progress is not None else None)
        try:
            if contacts:
                _require_secrets(orch)
            with progress if progress is not None else nullcontext():
                yield orch
        finally:
            orch.close()


def national_phone(value: str, region: str | None) -> str:
    """:func:`erasure.phonetext.national_phone` (imported when a phone is given: that module
    brings pydantic, which ``erasure --version`` must not load)."""
    from .phonetext import national_phone as read

    return read(value, region)


def _spec(rtype: RequestType, email: list[str] | None, phone: list[str] | None,
          customer_id: list[str] | None, user_id: list[str] | None, name: list[str] | None,
          ip: list[str] | None, ticket: str | None, verified: bool, override: str | None,
          received: datetime | None = None, id_space: str | None = None,
          corrections: list[str] | None = None, scope: str | None = None,
          region: str | None = None) -> RequestSpec:
    from .orchestrator import RequestSpec

    phone = [national_phone(p, region) for p in phone or ()]
    pairs = [_ident(t, v, id_space) for t, vs in (
        ("email", email), ("phone", phone), ("customer_id", customer_id), ("user_id", user_id),
        ("name", name), ("ip", ip)) for v in vs or ()]
    return RequestSpec(type=rtype, identifiers=tuple(pairs), ticket=ticket, verified=verified,
                       override_unverified=override, received_at=received,
                       corrections=_corrections(corrections), objection_scope=scope)


def _corrections(items: list[str] | None) -> tuple[tuple[str, str], ...]:
    """``--set TYPE=VALUE`` options as pairs (validated by the orchestrator)."""
    from .errors import UsageError

    pairs = []
    for item in items or ():
        ctype, sep, value = item.partition("=")
        if not sep:
            raise UsageError("--set takes TYPE=VALUE (e.g. --set email=new@example.org)")
        pairs.append((ctype.strip().lower(), value))
    return tuple(pairs)


def _ident(itype: str, value: str, id_space: str | None) -> tuple[str, str] | tuple[str, str, str]:
    """An identifier pair; ids (customer, user) carry the id space when one is named."""
    if id_space and itype in ("customer_id", "user_id"):
        return (itype, value, id_space)
    return (itype, value)


@contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C (SIGINT) during a run: one line on stderr saying what stopped and that the
    next run resumes it, exit 130 (128 + SIGINT, what shells expect)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        ids = list(getattr(exc, "requests", []))
        summary = getattr(exc, "summary", None)
        if summary is not None:
            # the requests the run finished (or left waiting) before the stop get their
            # result lines, as an uninterrupted run prints them; the stopped ones are named
            # below
            stopped = [rid for rid in ids if rid not in summary.finished]
            _result_lines(summary, skip=set(stopped))
            ids = stopped
        if ids:
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            what = (f"stopped while working on {len(ids)} request(s) ({shown}); each step "
                    "done was saved and their leases released")
        else:
            what = "stopped between batches; nothing was in progress"
        err.print(f"interrupted: {what}; the next `erasure run` resumes", soft_wrap=True,
                  highlight=False, markup=False)
        raise typer.Exit(130) from None


def _summary_exit(summary: RunSummary, *, failed: bool = False, verbose: bool = False,
                  per_request: bool = True, json_doc: dict[str, Any] | None = None) -> None:
    """Say what a run did and exit: 0 if it all ended well, else 1 (``failed``: the caller
    found a reason of its own).

    stdout has the results, one line per request naming it (``per_request``), or only
    ``json_doc``; stderr has what needs an operator and, as text, the counts and the chain
    head to publish. A run that had nothing due prints nothing at all (cron mails any
    output), unless ``verbose``; one that signed a chain head prints that head."""
    # a head over no receipts (a fresh ledger's first run) is nothing to publish
    signed = summary.head_signed and summary.head is not None and summary.head[0] > 0
    if not summary.claimed and not signed and not verbose and json_doc is None:
        raise typer.Exit(0 if summary.ok and not failed else 1)
    if summary.replanned:
        err.print(f"{len(summary.replanned)} approved request(s) now find a different set of "
                  "items than was approved; nothing was done to them: review and approve "
                  f"again ({', '.join(summary.replanned)})", soft_wrap=True, highlight=False)
    for rid in summary.awaiting_verification:
        err.print(f"{rid}: waits for an identity check; nothing was done (`erasure request "
                  f"verify {rid} --method METHOD`)", soft_wrap=True, highlight=False)
    text = json_doc is None
    if text and summary.awaiting_approval:
        err.print(f"{len(summary.awaiting_approval)} request(s) await approval: "
                  f"`erasure approve REQUEST`")
    if text and summary.outcomes:
        parts = ", ".join(f"{n} {o}" for o, n in sorted(summary.outcomes.items()))
        err.print(f"finished {len(summary.finished)} request(s): {parts}")
    if text and summary.waiting:
        parts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(summary.waiting.items()))
        err.print(f"tasks left for a later run: {parts} (`erasure status`)")
    for rid, system, error in summary.failed:
        # named here: a request whose last task failed has ended, and `status` lists
        # open requests; its receipts keep the error
        err.print(f"{rid} {system}: failed: {error} (`erasure receipts show {rid}`; "
                  f"`erasure retry {rid}` while it is open)", soft_wrap=True,
                  highlight=False, markup=False)
    for rid, system, reasons in summary.held:
        err.print(f"{rid} {system}: {reasons}; checked again by later runs while the request "
                  "is open (`erasure status`)", soft_wrap=True, highlight=False, markup=False)
    for rid, system, error in summary.blocked:
        err.print(f"{rid} {system}: blocked, needs an operator: {error} (fix it, then "
                  f"`erasure retry {rid}`)", soft_wrap=True, highlight=False, markup=False)
    if json_doc is not None:
        sys.stdout.write(json.dumps(json_doc, ensure_ascii=False, sort_keys=True) + "\n")
        raise typer.Exit(0 if summary.ok and not failed else 1)
    _result_lines(summary, per_request=per_request)
    if summary.head is not None:
        # One line to publish: `erasure receipts verify --expect-head HASH` checks against it.
        from .heads import head_line

        err.print(("nothing due; " if not summary.claimed and not signed else "")
                  + head_line(*summary.head), soft_wrap=True, highlight=False)
    raise typer.Exit(0 if summary.ok and not failed else 1)


def _result_lines(summary: RunSummary, *, per_request: bool = True,
                  skip: set[str] | frozenset[str] = frozenset()) -> None:
    """The results on stdout: a line per request (``per_request``; not those in
    ``skip``), then the packages written and their passwords."""
    if per_request:
        for rid, rtype in summary.claimed.items():
            if rid not in skip:
                out.print(f"{rid} {rtype}: {_result(summary, rid)}", highlight=False,
                          markup=False, soft_wrap=True)
    for rid, path in sorted(summary.packages.items()):
        out.print(f"package of {rid}: {path} (deliver it with `erasure package get {rid}`)",
                  highlight=False, markup=False, soft_wrap=True)
    for rid, password in sorted(summary.package_passwords.items()):
        # stdout, once: the password is stored nowhere, so it is given to the caller
        out.print(f"package of {rid}: password {password} (shown once; give it to the "
                  "person by another channel than the package)", highlight=False)


def _result(summary: RunSummary, rid: str) -> str:
    """A request's state after a run, in words (its line on stdout)."""
    if rid in summary.outcome_of:
        return f"finished, {summary.outcome_of[rid]}"
    if rid in summary.awaiting_verification:
        return f"waits for an identity check (`erasure request verify {rid}`)"
    if rid in summary.awaiting_approval:
        return f"found; awaits approval (`erasure approve {rid}`)"
    if rid in summary.lost:
        return "taken over by another runner"
    blocked = [system for r, system, _ in summary.blocked if r == rid]
    if blocked:
        return f"open; blocked in {', '.join(blocked)} (`erasure retry {rid}` once fixed)"
    stages = summary.left.get(rid)
    if stages:
        counts: dict[str, int] = {}
        for stage in stages:
            counts[stage] = counts.get(stage, 0) + 1
        return "open; tasks left: " + ", ".join(f"{n} {s.replace('_', ' ')}"
                                               for s, n in sorted(counts.items()))
    return "open (`erasure status`)"


# requests ------------------------------------------------------------------------------
