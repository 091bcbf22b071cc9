"""The ``erasure`` commands about the tool's own things: receipts, systems, connectors,
config, keys, discover and the demo. Like every command, they only parse and call."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .cli_common import (
    ConfigOpt,
    Emails,
    Phones,
    _errors,
    _fail,
    _load,
    _orchestrator,
    app,
    config_app,
    connectors_app,
    err,
    keys_app,
    national_phone,
    out,
    receipts_app,
    systems_app,
)
from .errors import ErasureError
from .tables import receipts_table

if TYPE_CHECKING:
    from .orchestrator import Orchestrator


@receipts_app.command("show")
def receipts_show(request_id: Annotated[str, typer.Argument(
        help="A request id, or a retention sweep's id (printed by `erasure sweep`).")],
                  json_: Annotated[bool, typer.Option(
                      "--json", help="One JSON object (docs/receipts-show.schema.json).")
                  ] = False,
                  config: ConfigOpt = None) -> None:
    """Print a request's (or a retention sweep's) receipts as a table."""
    from .ledger import ledger_exists

    with _orchestrator(config, connectors=False) as orch, _errors():
        if request_id.startswith("sweep-"):
            receipts = (orch.ledger.receipts(request_id)
                        if ledger_exists(orch.config.host.ledger_url()) else [])
            if not receipts:
                _fail(f"no retention sweep {request_id!r} in the ledger")
            title = f"Retention sweep {request_id}"
        else:
            orch.get_request(request_id)  # names the id when there is no such request
            receipts, title = orch.ledger.receipts(request_id), f"Request {request_id}"
        if json_:
            import json
            import sys

            from .reports import receipts_report

            sys.stdout.write(json.dumps(receipts_report(request_id, receipts),
                                        ensure_ascii=False, sort_keys=True) + "\n")
        else:
            out.print(receipts_table(receipts, title=title))


@receipts_app.command("export")
def receipts_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="JSON file to write.")],
    request: Annotated[str | None, typer.Option(
        help="Only this request's receipts (verify with --subset).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Write receipts, the signed chain head and the public key as JSON (docs/receipts.md)."""
    from .heads import export

    with _orchestrator(config, connectors=False) as orch, _errors():
        if request:
            orch.get_request(request)
        data = export(orch.chain, request)
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
    from .heads import Verdict, ledger_export, verify_export
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
            except (OSError, ValueError, RecursionError) as exc:  # nested too deep
                _fail(f"cannot read receipts file {file}: {exc}")
        cut: list[str] = []
        if file is None:
            with _orchestrator(config, connectors=False) as orch:
                data = ledger_export(orch.ledger)
                key_text = key_text or orch.keys.public_text
                # the ledger against the heads signed before (its own and the one kept
                # in the state folder): receipts cut off and heads re-signed show here
                cut = orch.chain.problems()
        if subset and expect_head is not None:
            _fail("--expect-head checks a whole chain; it cannot be used with --subset")
        verdict = verify_export(data, public_key_from_text(key_text or ""), subset=subset,
                                expect_head=expect_head)
        if cut:
            verdict = Verdict(verdict.checked, [*cut, *verdict.problems], verdict.summary,
                              verdict.notes)
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
    """Configured systems, their connector and policy (exit 1 when a system is not
    covered: its plugin failed to load or is blocked)."""
    with _orchestrator(config) as orch:
        table = Table(title="Systems")
        for col in ("system", "connector", "version", "policy", "status"):
            table.add_column(col)
        for name, s in orch.systems.items():
            table.add_row(name, s.config.connector, s.version, s.config.policy.value,
                          f"[red]not covered: {escape(s.uncovered)}[/]" if s.uncovered
                          else "ok")
        out.print(table)
        uncovered = {name: s.uncovered for name, s in orch.systems.items() if s.uncovered}
    for name, why in uncovered.items():
        err.print(f"[bold red]error:[/] {escape(name)}: not covered: {escape(why)}",
                  highlight=False, soft_wrap=True)
    if uncovered:
        # as `connectors list` and `config check`: a script checking an installation must
        # see that a configured system would not be searched or erased
        raise typer.Exit(1)


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
        advice = _advice(orch, problems)
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
                  "(folders should be 0700, files 0600)", soft_wrap=True, highlight=False,
                  markup=False)
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
        for line in advice.get(name, []):
            out.print(f"  {name}: [yellow]note: {escape(line)}[/]")
    raise typer.Exit(1 if any(problems.values()) or any(found.values()) else 0)


def _advice(orch: Orchestrator, problems: dict[str, str | None]) -> dict[str, list[str]]:
    """Per reachable system, its notes that are not failures (``Connector.advice``)."""
    notes: dict[str, list[str]] = {}
    for name, s in orch.systems.items():
        if problems.get(name) or s.uncovered:
            continue
        try:
            notes[name] = s.connector().advice()
        except ErasureError as exc:
            notes[name] = [f"could not be checked: {exc}"]
    return notes


def _deep_check(orch: Orchestrator, emails: list[str], phones: list[str],
                problems: dict[str, str | None]) -> dict[str, list[str]]:
    """Per system, the places beyond its mapping holding strong identifiers (see
    ``Connector.deep_check``); systems that cannot search say so in ``problems``."""
    from .errors import CapabilityNotSupported
    from .models import Identifier, IdentifierType, Subject

    idents = tuple([Identifier.parse(IdentifierType.EMAIL, e) for e in emails]
                   + [Identifier.parse(IdentifierType.PHONE, national_phone(
                       p, orch.config.host.default_phone_region)) for p in phones])
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
    """Installed connectors and the plugins that failed to load (exit 1 if one did)."""
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
        err.print(f"[bold red]error:[/] plugin {escape(f.plugin)} failed to load: "
                  f"{escape(f.error)}", highlight=False, soft_wrap=True)
    if plugins.failures:
        # an installed plugin that does not load leaves its systems uncovered: scripts
        # checking an installation must see it fail
        raise typer.Exit(1)


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the configuration and report every problem at once (exit 1 when a
    system's plugin is blocked or failed to load: the config is valid, the system would not
    be covered)."""
    with _errors():
        cfg, plugins = _load(config, strict=True)
    uncovered = {name: plugins.failure_for(s.connector) for name, s in cfg.systems.items()
                 if s.connector not in plugins.registry}
    if not uncovered:  # a check that fails never says OK (a script may grep for it)
        out.print(f"[green]OK[/]: {len(cfg.systems)} systems in {cfg.path}")
    for name, why in uncovered.items():
        err.print(f"[bold red]error:[/] {escape(name)}: not covered: {escape(why)}",
                  highlight=False, soft_wrap=True)
    # A broken plugin is named once: in the errors of the systems it leaves uncovered, or
    # (no system uses it) in a warning of its own.
    used = {s.connector for s in cfg.systems.values()}
    for f in plugins.failures:
        if f.plugin not in used:
            err.print(f"[yellow]warning:[/] plugin {escape(f.plugin)} failed to load: "
                      f"{escape(f.error)}", highlight=False, soft_wrap=True)
    # What an access package must tell the person (Art. 15) but config does not say.
    from .models import Capability

    exporting = [name for name, s in cfg.systems.items()
                 if (cls := plugins.registry.get(s.connector)) is None
                 or cls.supports(Capability.EXPORT)]
    for line in cfg.statement_warnings(exporting):
        err.print(f"warning: {line}", highlight=False, markup=False, soft_wrap=True)
    if uncovered:
        raise typer.Exit(1)


@keys_app.command("show-public")
def keys_show_public(config: ConfigOpt = None) -> None:
    """Print the public key that verifies receipts."""
    with _orchestrator(config, connectors=False) as orch:
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
