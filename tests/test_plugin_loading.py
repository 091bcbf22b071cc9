"""Third-party plugins, installed the way pip installs them (a dist-info with entry points).

A broken plugin is reported, and its systems wait, blocked with its reason, for an operator
to fix it and `erasure retry` (never silently skipped, never ended "not covered": a bad
upgrade must not end requests). A working one is listed and used like a built-in, and
ERASURE_BLOCK_PLUGINS keeps it from loading.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from clihelpers import (
    cli_env,
    describe,
    memory_system,
    parse_table,
    receipt_bodies,
    run_cli,
    run_many,
    seed,
    stored_items,
    table_row,
    write_config,
)

CONNECTORS = ("connector", "version", "capabilities", "plugin")
SYSTEMS = ("system", "connector", "version", "policy", "status")
STATUS = ("request", "ticket", "type", "status", "received", "due", "days left")
TASKS = ("request", "system", "state", "next try (UTC)", "last error")
RID = re.compile(r"\br-[0-9a-f]{16}\b")
RECEIPT = ("system", "action", "outcome", "found", "acted", "review", "failed", "residue",
           "calls")

BROKEN_MODULE = 'raise ImportError("No module named \'acme_sdk\' (install acme-sdk)")\n'

WORKING_MODULE = textwrap.dedent('''\
    """A third-party connector: items are {ref: email} in a JSON file."""
    import json
    from pathlib import Path

    import erasure
    from erasure import Capability, Finding, ItemOutcome, ItemStatus


    class JsonSettings(erasure.ConnectorSettings):
        path: str


    class JsonConnector(erasure.Connector):
        name = "jsonfile"
        version = "7.1"
        Settings = JsonSettings
        capabilities = frozenset({Capability.FIND, Capability.DELETE})
        identifier_types = frozenset({erasure.IdentifierType.EMAIL})

        def _load(self):
            return json.loads(Path(self.settings.path).read_text())

        def find(self, subjects):
            items = self._load()
            for s in subjects:
                for ident in s.identifiers:
                    for ref, email in sorted(items.items()):
                        if email == ident.value:
                            yield Finding(self.system, s.key, ref, "row", (ident,), ("email",))

        def delete(self, findings):
            items = self._load()
            out = []
            for f in findings:
                status = ItemStatus.DONE if items.pop(f.ref, None) else ItemStatus.ALREADY_DONE
                out.append(ItemOutcome(f, status))
            Path(self.settings.path).write_text(json.dumps(items))
            yield from out


    @erasure.hookimpl
    def erasure_register_connectors(registry):
        registry.add(JsonConnector)
    ''')


def install_fake_plugin(site: Path, dist: str, module: str, entry_name: str,
                        source: str) -> None:
    """What pip leaves behind: a module and a dist-info naming it in an entry-point group."""
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        f"[erasure.connectors]\n{entry_name} = {module}\n", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    install_fake_plugin(site, "broken-erasure-plugin", "broken_erasure_plugin", "broken",
                        BROKEN_MODULE)
    install_fake_plugin(site, "jsonfile-erasure-plugin", "jsonfile_erasure_plugin",
                        "jsonfile", WORKING_MODULE)
    return site


@pytest.fixture
def world(tmp_path: Path, site: Path) -> dict[str, Path]:
    crm = tmp_path / "crm.json"
    seed(crm, {"contact/1": ("contact", {"email": "alice@example.com"}),
               "contact/2": ("contact", {"email": "bob@example.com"})})
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"row/1": "alice@example.com", "row/2": "bob@example.com"}))
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({"old/1": "alice@example.com"}))
    config = write_config(tmp_path, {
        "crm": memory_system(crm),
        "legacy": {"connector": "broken", "path": str(legacy)},
        "table": {"connector": "jsonfile", "path": str(table)},
    })
    return {"config": config, "crm": crm, "table": table, "legacy": legacy, "site": site}


def env_for(site: Path, block: str = "sql") -> dict[str, str]:
    return cli_env(pythonpath=site, block=block)


def test_broken_plugin_is_reported_and_others_still_load(site):
    proc = run_cli("connectors", "list", env=env_for(site))
    # An installed plugin that does not load fails the listing (a script checking an
    # installation sees it), named once with its own reason for the operator.
    assert proc.returncode == 1, describe(proc)
    both = proc.stdout + proc.stderr
    assert both.count("broken") == 1, describe(proc)
    assert "error: plugin broken failed to load: ImportError" in proc.stderr, describe(proc)
    assert both.count("acme-sdk") == 1
    assert table_row(proc.stdout, CONNECTORS, "memory")["plugin"] == "memory"
    row = table_row(proc.stdout, CONNECTORS, "jsonfile")
    assert row == {"connector": "jsonfile", "version": "7.1", "capabilities": "delete, find",
                   "plugin": "jsonfile"}, row


def test_config_check_fails_for_the_broken_plugins_system(world):
    proc = run_cli("config", "check", config=world["config"], env=env_for(world["site"]))
    # The config itself is valid; a system of it would not be covered: exit 1, named.
    assert proc.returncode == 1, describe(proc)
    assert "OK" not in proc.stdout, describe(proc)  # a failed check never says OK
    assert "error: legacy: not covered: plugin 'broken' failed to load: ImportError" \
        in proc.stderr, describe(proc)
    assert "crm: not covered" not in proc.stderr and "table: not covered" not in proc.stderr
    # the failure is named once, as the error of the system it leaves uncovered
    assert (proc.stdout + proc.stderr).count("acme-sdk") == 1, describe(proc)


def test_config_check_warns_once_of_a_broken_plugin_no_system_uses(world, tmp_path):
    (tmp_path / "other").mkdir()
    config = write_config(tmp_path / "other", {"crm": memory_system(world["crm"])})
    proc = run_cli("config", "check", config=config, env=env_for(world["site"]))
    # every system is covered: the check passes, and still names the broken plugin once
    assert proc.returncode == 0, describe(proc)
    assert "warning: plugin broken failed to load: ImportError" in proc.stderr, describe(proc)
    assert (proc.stdout + proc.stderr).count("acme-sdk") == 1, describe(proc)


def test_systems_list_fails_for_the_broken_plugins_system(world):
    proc = run_cli("systems", "list", config=world["config"], env=env_for(world["site"]))
    # The table still lists every system; a script checking an installation sees the one
    # that would not be covered by the exit code and one line on stderr naming it.
    assert proc.returncode == 1, describe(proc)
    row = table_row(proc.stdout, SYSTEMS, "legacy")
    assert row["status"].startswith("not covered: plugin 'broken' failed to load"), row
    assert table_row(proc.stdout, SYSTEMS, "crm")["status"] == "ok"
    assert table_row(proc.stdout, SYSTEMS, "table")["status"] == "ok"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: legacy: not covered: plugin 'broken' failed to load: "
                      "ImportError: No module named 'acme_sdk' (install acme-sdk)"], \
        describe(proc)


def test_connectors_list_and_config_check_pass_when_every_plugin_loads(world):
    env = env_for(world["site"], block="sql,broken")
    listed, check = run_many(["connectors", "list"],
                             ["config", "check", "-c", str(world["config"])], env=env)
    assert listed.returncode == 0, describe(listed)
    assert "failed" not in listed.stdout + listed.stderr
    # the blocked plugin's system still fails the check: it would not be covered
    assert check.returncode == 1, describe(check)
    assert "legacy: not covered: plugin 'broken' is blocked" in check.stderr


def test_without_the_plugin_installed_its_connector_is_unknown(world):
    proc = run_cli("config", "check", config=world["config"])  # no PYTHONPATH
    assert proc.returncode == 2, describe(proc)
    assert "systems.legacy.connector: unknown connector 'broken'" in proc.stderr
    assert "systems.table.connector: unknown connector 'jsonfile'" in proc.stderr


def assert_waiting(world: dict[str, Path], env: dict[str, str], rid: str, system: str,
                   reason: str) -> None:
    """The request is open, its identifiers kept, nothing acted anywhere (the plan is not
    whole), no receipt; ``erasure status`` shows ``system`` blocked with ``reason``."""
    config = world["config"]
    assert receipt_bodies(config, rid) == []
    assert set(stored_items(world["crm"])) == {"contact/1", "contact/2"}
    assert json.loads(world["table"].read_text()) == {"row/1": "alice@example.com",
                                                      "row/2": "bob@example.com"}
    status = run_cli("status", config=config, env=env)
    assert table_row(status.stdout, STATUS, rid)["status"] == "open", describe(status)
    task = next(r for r in parse_table(status.stdout, TASKS)
                if r["request"] == rid and r["system"] == system)
    assert task["state"].startswith("blocked"), task
    assert reason in task["last error"], task
    assert task["next try (UTC)"].startswith("erasure retry"), task


def test_a_broken_plugin_leaves_its_system_blocked_until_fixed_and_retried(world):
    # A bad upgrade breaks a plugin: its system's task waits, saying why; nothing ends.
    config, env = world["config"], env_for(world["site"])
    proc = run_cli("erase", "--email", "alice@example.com", "--verified", "--ticket", "P-9",
                   config=config, env=env)
    assert proc.returncode == 1, describe(proc)
    (rid,) = set(RID.findall(proc.stdout))
    reason = "plugin 'broken' failed to load: ImportError: No module named 'acme_sdk'"
    assert any(f"{rid} legacy: blocked" in line and reason in line
               for line in proc.stderr.splitlines()), describe(proc)
    assert_waiting(world, env, rid, "legacy", reason)
    # a cron run while it is still broken leaves it waiting (it does not end it)
    again = run_cli("run", config=config, env=env)
    assert again.returncode == 0, describe(again)
    assert_waiting(world, env, rid, "legacy", reason)

    # The operator fixes the plugin and resumes the request: every system completes.
    (world["site"] / "broken_erasure_plugin.py").write_text(
        WORKING_MODULE.replace('name = "jsonfile"', 'name = "broken"'), encoding="utf-8")
    proc = run_cli("retry", rid, config=config, env=env)
    assert proc.returncode == 0 and "legacy" in proc.stdout, describe(proc)
    proc = run_cli("run", config=config, env=env)
    assert proc.returncode == 0, describe(proc)
    bodies = {b["system"]: b for b in receipt_bodies(config, rid)}
    assert {s: b["outcome"] for s, b in bodies.items()} == {
        "crm": "completed", "legacy": "completed", "table": "completed"}, bodies
    assert bodies["table"]["connector_version"] == "7.1"
    # every system erased Alice, and only Alice
    assert set(stored_items(world["crm"])) == {"contact/2"}
    assert json.loads(world["table"].read_text()) == {"row/2": "bob@example.com"}
    assert json.loads(world["legacy"].read_text()) == {}
    proc = run_cli("receipts", "verify", config=config, env=env)
    assert proc.returncode == 0, describe(proc)


def test_blocked_third_party_plugin_is_not_loaded(world):
    env = env_for(world["site"], block="sql,jsonfile")
    listed, check, systems, erase = run_many(
        ["connectors", "list"],
        ["config", "check", "-c", str(world["config"])],
        ["systems", "list", "-c", str(world["config"])],
        ["erase", "--email", "alice@example.com", "--verified", "-c", str(world["config"])],
        env=env)
    assert listed.returncode == 1, describe(listed)  # the broken plugin, not the blocked
    assert "jsonfile" not in listed.stdout + listed.stderr
    assert table_row(listed.stdout, CONNECTORS, "memory")["plugin"] == "memory"
    assert check.returncode == 1, describe(check)
    assert "table: not covered: plugin 'jsonfile' is blocked by ERASURE_BLOCK_PLUGINS" \
        in check.stderr
    assert systems.returncode == 1, describe(systems)  # the blocked system is not covered
    assert "not covered" in table_row(systems.stdout, SYSTEMS, "table")["status"]
    # the blocked plugin's system waits, blocked, saying why; nothing acted anywhere
    assert erase.returncode == 1, describe(erase)
    (rid,) = set(RID.findall(erase.stdout))
    assert_waiting(world, env, rid, "table",
                   "plugin 'jsonfile' is blocked by ERASURE_BLOCK_PLUGINS")
