"""The operator's command line (issue 26, items 5, 7 and 8), driven as a subprocess: output
a script can parse (`--json` on run and the one-shot commands, each line naming its
request), a quiet idle run for cron, errors on one line, help and version, identifiers
checked for their syntax only, secrets resolved only for the systems a command contacts,
and a start-up that imports only what the command uses."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import referencing
from clihelpers import (
    cli_env,
    describe,
    error_lines,
    memory_system,
    run_cli,
    seed,
    stored_items,
    write_config,
)

DOCS = Path(__file__).parent.parent / "docs"
RID = re.compile(r"\br-[0-9a-f]{16}\b")
#: only the memory connector's plugin loads: each command starts faster
FAST = "sql,mail,notify,s3,salesforce,zendesk"


def cli(*args: str, config: Path | None = None, env: dict[str, str] | None = None) -> Any:
    """``erasure ARGS`` with only the memory connector installed."""
    return run_cli(*args, config=config, env=env if env is not None else cli_env(block=FAST))


def _registry() -> referencing.Registry:
    """Every schema in docs/, so that one may refer to another by its file name."""
    resources = []
    for name in ("run", "request-result", "receipts-show"):
        doc = json.loads((DOCS / f"{name}.schema.json").read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(doc)
        resources.append((doc["$id"], referencing.Resource.from_contents(doc)))
    return referencing.Registry().with_resources(resources)


def _valid(doc: dict[str, Any], name: str) -> dict[str, Any]:
    registry = _registry()
    schema = registry.contents(
        json.loads((DOCS / name).read_text(encoding="utf-8"))["$id"])
    jsonschema.Draft202012Validator(schema, registry=registry).validate(doc)
    return doc


def _json(proc: Any) -> dict[str, Any]:
    assert proc.stdout.count("\n") == 1, describe(proc)  # one document, one line
    return json.loads(proc.stdout)


def test_run_and_one_shot_commands_print_json_in_their_documented_shapes(
        tmp_path: Path) -> None:
    crm, mail = tmp_path / "crm.json", tmp_path / "mail.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"}),
               "c/2": ("contact", {"email": "bob@example.org"}),
               "c/3": ("contact", {"email": "cy@example.org"})})
    seed(mail, {"m/1": ("message", {"email": "ann@example.org"})})
    config = write_config(tmp_path, {"crm": memory_system(crm), "mail": memory_system(mail)})

    plan = _valid(_json(cli("erase", "--email", "ann@example.org", "--dry-run", "--json",
                                config=config)), "request-result.schema.json")
    assert plan["dry_run"] and plan["request"] is None
    assert {p["system"]: p["actionable"] for p in plan["plan"]} == {"crm": 1, "mail": 1}
    assert set(stored_items(crm)) == {"c/1", "c/2", "c/3"}  # a dry run changes nothing

    erased = cli("erase", "--email", "ann@example.org", "--verified", "--json",
                     config=config)
    assert erased.returncode == 0, describe(erased)
    doc = _valid(_json(erased), "request-result.schema.json")
    assert doc["type"] == "erasure" and RID.fullmatch(doc["request"])
    assert {r["body"]["system"]: r["body"]["outcome"] for r in doc["receipts"]} == {
        "crm": "completed", "mail": "completed"}
    (req,) = doc["run"]["requests"]
    assert (req["request"], req["state"], req["outcome"]) == (
        doc["request"], "finished", "completed")
    assert "c/1" not in stored_items(crm)

    exported, restricted = _parallel(lambda a: cli(*a, "--verified", "--json", config=config),
                                     [("export", "--email", "bob@example.org"),
                                      ("restrict", "--email", "cy@example.org")])
    access = _valid(_json(exported), "request-result.schema.json")
    (req,) = access["run"]["requests"]
    assert req["package"] and Path(req["package"]).is_file()
    _valid(_json(restricted), "request-result.schema.json")

    created = [p.stdout.strip() for p in _parallel(
        lambda t: cli("request", "create", "--type", t, "--email", "cy@example.org",
                      "--verified", config=config), ["access", "erasure"])]
    ran = cli("run", "--json", config=config)
    assert ran.returncode == 0, describe(ran)
    report = _valid(_json(ran), "run.schema.json")
    assert {r["request"]: r["state"] for r in report["requests"]} == {
        rid: "finished" for rid in created}
    assert report["ok"] and report["head"]["count"] == 10  # 5 requests x 2 systems
    # JSON holds no identifier
    assert "example.org" not in erased.stdout + access["run"].__repr__() + ran.stdout


def test_an_idle_run_prints_nothing_and_a_busy_one_names_each_request(
        tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)})
    rids = [p.stdout.strip() for p in _parallel(
        lambda t: cli("request", "create", "--type", t, "--email", "ann@example.org",
                      "--verified", config=config), ["find", "access"])]
    busy = cli("run", config=config)
    assert busy.returncode == 0, describe(busy)
    lines = busy.stdout.splitlines()
    assert f"{rids[0]} find: finished, completed" in lines, describe(busy)
    assert f"{rids[1]} access: finished, completed" in lines, describe(busy)
    assert all(RID.search(line) for line in lines), describe(busy)  # every line names one
    # from cron, every few minutes: nothing due, nothing said, on either stream
    idle, told, as_json = _parallel(lambda a: cli("run", *a, config=config),
                                    [(), ("-v",), ("--json",)])
    assert (idle.returncode, idle.stdout, idle.stderr) == (0, "", ""), describe(idle)
    assert told.returncode == 0 and re.search(r"nothing due; chain head: 2 [0-9a-f]{64}",
                                              told.stderr), describe(told)
    idle_json = _valid(_json(as_json), "run.schema.json")
    assert idle_json["requests"] == [] and idle_json["head"]["count"] == 2


def test_a_fresh_state_folder_gets_its_keys_without_a_warning(tmp_path: Path) -> None:
    # the first cron run of a new installation (or `make demo`): keys are made, nothing
    # went wrong, nothing is said; `run -v` says where the keys are to back them up
    configs = []
    for name in ("quiet", "told"):
        (tmp_path / name).mkdir()
        configs.append(write_config(tmp_path / name,
                                    {"crm": memory_system(tmp_path / name / "crm.json")}))
    quiet, told = _parallel(lambda a: cli("run", *a[1], config=a[0]),
                            [(configs[0], ()), (configs[1], ("-v",))])
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", ""), describe(quiet)
    assert (tmp_path / "quiet" / "state" / "keys" / "signing.key").is_file()
    assert told.returncode == 0, describe(told)
    assert "WARNING" not in told.stderr, describe(told)
    keys = tmp_path / "told" / "state" / "keys"
    assert f"INFO erasure.keys: created new signing and encryption keys in {keys} (back them " \
           "up" in told.stderr, describe(told)


def test_keys_made_anew_beside_receipts_signed_by_lost_keys_is_a_warning(
        tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)})
    erased = cli("erase", "--email", "ann@example.org", "--verified", config=config)
    assert erased.returncode == 0, describe(erased)
    keys = tmp_path / "state" / "keys"
    old = (keys / "signing.key").read_text()
    shutil.rmtree(keys)  # lost: a state folder restored without its keys
    proc = cli("run", config=config)
    assert proc.returncode == 0, describe(proc)
    (line,) = [ln for ln in proc.stderr.splitlines() if "keys" in ln]
    assert line.startswith(f"WARNING erasure.keys: created new keys in {keys} although the "
                           "ledger holds 1 receipt(s) signed by key "), describe(proc)
    assert "restore them from backup" in line, describe(proc)
    assert (keys / "signing.key").read_text() != old


def test_errors_are_one_line_on_stderr(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")})
    cases = {
        ("erase", "--bogus"): "error: No such option: --bogus (`erasure erase --help`)",
        ("status", "--limit", "many"): "error: Invalid value for '--limit'",
        ("erase", "--email", "not-an-address", "--verified", "--json"):
            "error: email: invalid email address",
    }
    procs = _parallel(lambda a: cli(*a, config=config), list(cases))
    for line, proc in zip(cases.values(), procs, strict=True):
        assert proc.returncode == 2 and proc.stdout == "", describe(proc)
        (only,) = error_lines(proc)
        assert only.startswith(line) and "╭" not in proc.stderr, describe(proc)


def test_help_texts_and_version(tmp_path: Path) -> None:
    import typer

    from erasure.cli import app

    top = cli("--help")
    assert top.returncode == 0 and "GDPR data-subject requests" in top.stdout, top.stdout
    version = cli("--version")
    assert version.returncode == 0 and re.fullmatch(r"erasure \d+\.\d+\S*\n", version.stdout)
    # every command's help is written for an operator: no code docstring, no reST
    commands: list[tuple[str, Any]] = []
    todo = [("erasure", typer.main.get_command(app))]
    while todo:
        path, group = todo.pop()
        for name, cmd in getattr(group, "commands", {}).items():
            todo.append((f"{path} {name}", cmd))
            commands.append((f"{path} {name}", cmd))
    assert len(commands) > 30
    for path, cmd in commands:
        text = cmd.help or ""
        assert text.strip(), path
        assert "``" not in text and "What the" not in text and ":param" not in text, path
    helps = {path: cmd.help for path, cmd in commands}
    assert "Art. 18" in helps["erasure restrict"] and "rase" not in helps["erasure restrict"]
    assert "Art. 17" in helps["erasure erase"]


def test_an_address_in_a_special_use_domain_is_an_identifier_like_any_other(
        tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@shop.test"}),
               "c/2": ("contact", {"email": "bob@intranet.local"}),
               "c/3": ("contact", {"email": "keep@shop.example"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)})
    proc = cli("erase", "--email", "Ann@Shop.TEST", "--email", "bob@intranet.local",
                   "--verified", config=config)
    assert proc.returncode == 0, describe(proc)
    assert set(stored_items(crm)) == {"c/3"}
    bad = cli("erase", "--email", "ann@shop..test", "--verified", config=config)
    assert bad.returncode == 2 and "invalid email address" in bad.stderr, describe(bad)


def _env_without(*names: str) -> dict[str, str]:
    env = cli_env(block=FAST)
    for name in names:
        env.pop(name, None)
    return env


def test_commands_resolve_only_the_secrets_of_the_systems_they_contact(tmp_path: Path) -> None:
    crm, vault = tmp_path / "crm.json", tmp_path / "vault.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"})})
    seed(vault, {"v/1": ("doc", {"email": "ann@example.org"})})
    config = write_config(tmp_path, {
        "crm": memory_system(crm),
        "vault": memory_system(vault, password={"env": "OPCLI_VAULT_PASSWORD"})})
    with_secret = cli_env({"OPCLI_VAULT_PASSWORD": "s3cret"}, block=FAST)
    done = cli("erase", "--email", "ann@example.org", "--verified", config=config,
                   env=with_secret)
    assert done.returncode == 0, describe(done)
    # After the run, without the secret: what touches no system works
    without = _env_without("OPCLI_VAULT_PASSWORD")
    light = [("status",), ("receipts", "verify"),
             ("request", "create", "--type", "erasure", "--email", "bob@example.org",
              "--verified")]
    for proc in _parallel(lambda args: cli(*args, config=config, env=without), light):
        assert proc.returncode == 0, describe(proc)
    # what contacts the system says, in one line, which variable it needs; nothing is done
    ran, check = _parallel(lambda a: cli(*a, config=config, env=without),
                           [("run",), ("config", "check")])
    assert ran.returncode == 2 and ran.stdout == "", describe(ran)
    (line,) = error_lines(ran)
    assert "systems.vault.password: environment variable OPCLI_VAULT_PASSWORD is not set" \
        in line, describe(ran)
    assert "s3cret" not in ran.stderr + ran.stdout
    assert check.returncode == 2 and "OPCLI_VAULT_PASSWORD" in check.stderr, describe(check)


# what a command imports: a subprocess runs it and reports sys.modules
_IMPORTS = """
import json, sys
from erasure.cli import run_app
code = run_app(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    json.dump(sorted({m.split(".")[0] for m in sys.modules}), fh)
sys.exit(code)
"""
_HEAVY = {"boto3", "botocore", "zenpy", "simple_salesforce", "fastapi", "uvicorn"}
_CONNECTORS = {"erasure_s3", "erasure_sql", "erasure_mail", "erasure_zendesk",
               "erasure_salesforce", "erasure_notify"}


def _imported(tmp_path: Path, *args: str) -> set[str]:
    import subprocess
    import sys

    out = tmp_path / f"modules-{abs(hash(args))}.json"
    proc = subprocess.run([sys.executable, "-c", _IMPORTS, str(out), *args],
                          capture_output=True, text=True, timeout=60,
                          env=cli_env(block=None))  # every installed plugin may load
    assert proc.returncode == 0, describe(proc)
    return set(json.loads(out.read_text(encoding="utf-8")))


def test_start_up_imports_only_what_the_command_uses(tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)})
    assert cli("find", "--email", "ann@example.org", config=config).returncode == 0
    # the same ledger, with a system of every heavy connector configured beside the crm
    wide = write_config(tmp_path, {
        "crm": memory_system(crm),
        "files": {"connector": "s3",
                  "rules": [{"bucket": "shop-files", "key_template": "c/{email}"}]},
        "shop": {"connector": "sql", "url": f"sqlite:///{tmp_path / 'shop.db'}",
                 "retention_months": 24,
                 "tables": {"orders": {"identifiers": {"email": "email"},
                                       "retention_column": "placed_at"}}},
        "desk": {"connector": "zendesk", "subdomain": "acme", "email": "a@example.org",
                 "token": {"env": "OPCLI_ZD_TOKEN"}},
        "sales": {"connector": "salesforce", "instance_url": "https://acme.my.salesforce.com",
                  "auth": "session", "session_id": {"env": "OPCLI_SF_SESSION"}},
    }, name="wide.toml")
    c, w = ("-c", str(config)), ("-c", str(wide))
    commands = [("--version",), ("--help",), ("receipts", "verify", *c),
                ("request", "create", "--type", "find", "--email", "b@example.org", *c),
                ("status", *w), ("receipts", "verify", *w), ("status", "--json", *w)]
    found = dict(zip(commands, _parallel(lambda a: _imported(tmp_path, *a), commands),
                     strict=True))
    for args in commands[:2]:
        assert not found[args] & (_HEAVY | _CONNECTORS | {"sqlalchemy", "pydantic"}), args
    for args in commands[2:]:
        assert not found[args] & (_HEAVY | _CONNECTORS), (args, found[args] & _CONNECTORS)
    # status's retention table without the connectors: the system whose connector declares
    # retention sweeps is listed (never swept), the others are not
    shown = cli("status", config=wide, env=cli_env(block=None))
    assert shown.returncode == 0, describe(shown)
    assert re.search(r"Retention sweeps.*\n.*\bshop\b.*\bnever\b", shown.stdout, re.S), \
        describe(shown)
    assert not re.search(r"^\W*(files|desk|sales|crm)\W.*never", shown.stdout, re.M), \
        describe(shown)


def test_retention_declarations_match_the_connectors(monkeypatch: Any) -> None:
    """What status reads from the distributions' metadata (``erasure.retention``) is what
    the connectors do: every installed connector with ``Capability.RETENTION``, no other."""
    from erasure.models import Capability
    from erasure.plugins import BLOCK_ENV, PluginHost, declared_retention

    monkeypatch.delenv(BLOCK_ENV, raising=False)
    host = PluginHost.load()
    assert not host.failures, host.failures
    sweeping = {name for name, cls in host.registry.classes().items()
                if cls.supports(Capability.RETENTION)}
    assert sweeping >= {"mail", "sql"} and declared_retention() == sweeping


def _parallel(fn: Any, items: list[Any]) -> list[Any]:
    """``fn`` over ``items`` at once (independent commands: keeps the test fast)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(fn, items))
