"""The ``erasure`` command line, run as a real subprocess against file-backed memory systems.

Exit codes: 0 all systems completed (or retained), 1 some system failed / not covered /
residue, 2 usage or configuration error, and then nothing was written anywhere.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from clihelpers import (
    cli_env,
    describe,
    error_lines,
    journal,
    ledger_path,
    ledger_query,
    memory_system,
    receipt_bodies,
    run_cli,
    run_many,
    seed,
    stored_items,
    table_row,
    write_config,
)

PHONE = "+4915112345678"  # shared by Alice and Bob (a household)

CRM = {
    "contact/1": ("contact", {"email": "alice@example.com", "phone": PHONE,
                              "customer_id": "C-1001", "city": "Berlin"}),
    "contact/2": ("contact", {"email": "jimalice@example.com", "customer_id": "C-1002"}),
    "contact/3": ("contact", {"email": "bob@example.net", "phone": PHONE}),
}
HELPDESK = {
    "user/77": ("user", {"email": "Alice@Example.com"}),
    "ticket/501": ("ticket", {"customer_id": "C-1001", "subject": "kettle"}),
    "user/78": ("user", {"email": "alice@example.co"}),
}
ALICE = {"crm": {"contact/1"}, "helpdesk": {"user/77", "ticket/501"}}
OTHERS = {"crm": {"contact/2", "contact/3"}, "helpdesk": {"user/78"}}
RID = re.compile(r"\br-[0-9a-f]{16}\b")
RECEIPT = ("system", "action", "outcome", "found", "acted", "review", "failed", "residue",
           "calls")
STATUS = ("request", "ticket", "type", "status", "received", "due", "days left")
PLAN = ("system", "connector", "policy", "action", "found", "would act on", "review only")
SYSTEMS = ("system", "connector", "version", "policy", "status")
CONNECTORS = ("connector", "version", "capabilities", "plugin")


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """Two seeded memory systems and a config naming them."""
    paths = {"crm": tmp_path / "crm.json", "helpdesk": tmp_path / "helpdesk.json"}
    seed(paths["crm"], CRM)
    seed(paths["helpdesk"], HELPDESK)
    config = write_config(tmp_path, {n: memory_system(p) for n, p in paths.items()})
    return {"config": config, **paths}


def refs(path: Path) -> set[str]:
    return set(stored_items(path))


def assert_untouched(world: dict[str, Path]) -> None:
    assert refs(world["crm"]) == set(CRM)
    assert refs(world["helpdesk"]) == set(HELPDESK)
    assert journal(world["crm"]) == [] and journal(world["helpdesk"]) == []


def assert_nothing_written(world: dict[str, Path]) -> None:
    state = world["config"].parent / "state"
    assert not state.exists(), f"state written: {sorted(p.name for p in state.rglob('*'))}"
    assert_untouched(world)


def assert_one_line_error(proc, *needles: str) -> str:
    assert proc.returncode == 2, describe(proc)
    lines = error_lines(proc)
    assert len(lines) == 1, describe(proc)
    assert proc.stderr == lines[0] + "\n", "nothing but the line, not even a blank one"
    line = lines[0]
    assert line.startswith("error: "), line
    for n in needles:
        assert n in line, f"{n!r} not in {line!r}"
    return line


def create_request(config: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = run_cli("request", "create", *args, config=config, env=env)
    assert proc.returncode == 0, describe(proc)
    ids = RID.findall(proc.stdout)
    assert len(ids) == 1, describe(proc)
    return ids[0]


# bad input: exit 2, one line naming the problem, nothing written -------------------------

@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["erase", "--email", "alice@@example.com", "--verified"], ["email", "invalid"]),
        (["erase", "--email", "alice@example.com", "--phone", "12ab", "--verified"],
         ["phone", "invalid"]),
        (["erase", "--verified"], ["identifier"]),
        (["request", "create", "--type", "erasure", "--email", "not-an-email", "--verified"],
         ["email"]),
        (["request", "create", "--type", "access"], ["identifier"]),
        (["find", "--dry-run", "--phone", "12ab"], ["phone"]),
        (["erase", "--email", "alice@example.com"], ["refusing erasure", "verified"]),
        (["request", "create", "--type", "erasure", "--email", "alice@example.com"],
         ["refusing erasure", "verified"]),
        (["erase", "--email", "alice@example.com", "--override-unverified", "  "],
         ["override-unverified", "reason"]),
    ],
    ids=["email", "phone", "no-identifier", "create-email", "create-no-identifier",
         "dry-run-phone", "erase-unverified", "create-unverified", "override-blank-reason"],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(world, args, needles):
    proc = run_cli(*args, config=world["config"])
    line = assert_one_line_error(proc, *needles)
    assert "alice" not in line and "12ab" not in line  # errors never echo personal data
    assert_nothing_written(world)


def test_unknown_request_id_exits_2_and_changes_nothing(world):
    config = world["config"]
    rid = create_request(config, "--type", "erasure", "--email", "alice@example.com",
                         "--verified")
    before = ledger_query(config, "SELECT * FROM requests")
    for proc in run_many(
            ["receipts", "show", "r-doesnotexist00"], ["approve", "r-doesnotexist00"],
            ["request", "extend", "r-doesnotexist00", "--reason", "complex"],
            ["run", "--request", "r-doesnotexist00"], config=config):
        assert_one_line_error(proc, "r-doesnotexist00")
    assert ledger_query(config, "SELECT * FROM requests") == before
    assert ledger_query(config, "SELECT count(*) FROM receipts") == [(0,)]
    # recorded with its tasks, which never moved: `run --request <unknown>` ran nothing
    assert ledger_query(config, "SELECT DISTINCT stage FROM tasks") == [("pending",)]
    assert ledger_query(config, "SELECT count(*) FROM task_events") == [(0,)]
    assert_untouched(world)  # the open request was not run by `run --request <unknown>`
    assert rid in run_cli("status", config=config).stdout


@pytest.mark.parametrize("command", [["receipts", "show"], ["approve"]])
def test_unknown_request_id_on_fresh_setup_writes_nothing(world, command):
    proc = run_cli(*command, "r-doesnotexist00", config=world["config"])
    assert_one_line_error(proc, "r-doesnotexist00")
    assert_nothing_written(world)


# configuration errors ------------------------------------------------------------------

MEMORY = 'connector = "memory"\npath = "CRM_PATH"\n'
BAD_CONFIGS = {
    "unknown-connector": (
        '[erasure]\nstate_dir = "state"\n[systems.crm]\nconnector = "nosuchthing"\n',
        ["systems.crm.connector", "nosuchthing", "memory"]),
    "unset-env": (
        '[erasure]\nstate_dir = "state"\n[systems.crm]\n' + MEMORY
        + 'password = { env = "ERASURE_TEST_UNSET_VAR" }\n',
        ["systems.crm.password", "ERASURE_TEST_UNSET_VAR", "not set"]),
    "inline-password": (
        '[erasure]\nstate_dir = "state"\n[systems.crm]\n' + MEMORY
        + 'password = "hunter2-secret"\n',
        ["systems.crm.password", 'env = "NAME"']),
    "invalid-toml": ('[erasure\nstate_dir = "state"\n', ["not valid TOML", "line 1"]),
    "unknown-key": ('[erasure]\nstate_dir = "state"\n[systems.crm]\n' + MEMORY
                    + "colour = 3\n", ["systems.crm.colour", "unknown key"]),
    "retain-without-reason": ('[erasure]\nstate_dir = "state"\n[systems.crm]\n' + MEMORY
                              + 'policy = "retain"\n', ["systems.crm.reason", "retain"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_problem_exits_2_naming_it(world, case):
    text, needles = BAD_CONFIGS[case]
    config = world["config"].parent / "bad.toml"
    config.write_text(text.replace("CRM_PATH", str(world["crm"])), encoding="utf-8")
    commands = [["config", "check"]]
    if case in ("unknown-connector", "inline-password"):  # the run path refuses the same way
        commands.append(["erase", "--email", "alice@example.com", "--verified"])
    for proc in run_many(*commands, config=config):
        assert_one_line_error(proc, *needles)
        assert "hunter2-secret" not in proc.stdout + proc.stderr
    assert_nothing_written(world)


def test_config_with_several_problems_names_each(world):
    config = world["config"].parent / "bad.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\nbatch_size = 0\n'
        '[systems.crm]\nconnector = "nosuchthing"\n'
        f'[systems.helpdesk]\nconnector = "memory"\npath = "{world["helpdesk"]}"\n'
        'password = "sk-live-123"\n', encoding="utf-8")
    proc = run_cli("config", "check", config=config)
    assert proc.returncode == 2, describe(proc)
    for needle in ("3 problems", "erasure.batch_size", "systems.crm.connector",
                   "systems.helpdesk.password"):
        assert needle in proc.stderr, describe(proc)
    assert "sk-live-123" not in proc.stderr
    assert_nothing_written(world)


@pytest.mark.parametrize("which", ["missing", "directory"])
def test_unreadable_config_exits_2(world, which):
    config = world["config"].parent / "nope.toml"
    if which == "directory":
        config.mkdir()
    for proc in run_many(["config", "check"],
                         ["erase", "--email", "alice@example.com", "--verified"],
                         config=config):
        assert_one_line_error(proc, "cannot read config", "nope.toml")
    assert_nothing_written(world)


def test_no_config_at_all_exits_2(world, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("status", cwd=empty)  # no -c, no $ERASURE_CONFIG, no ./erasure.toml
    assert_one_line_error(proc, "--config", "ERASURE_CONFIG")
    assert list(empty.iterdir()) == []
    proc = run_cli("status", cwd=empty, env=cli_env({"ERASURE_CONFIG": str(world["config"])}))
    assert proc.returncode == 0, describe(proc)
    proc = run_cli("status", cwd=world["config"].parent)  # ./erasure.toml
    assert proc.returncode == 0, describe(proc)


def test_config_check_ok_and_not_covered(world):
    proc = run_cli("config", "check", config=world["config"])
    assert proc.returncode == 0, describe(proc)
    assert "OK: 2 systems" in proc.stdout
    assert "not covered" not in proc.stdout
    proc = run_cli("config", "check", config=world["config"],
                   env=cli_env({"ERASURE_BLOCK_PLUGINS": "memory,sql"}))
    # valid, but its systems would not be covered: a failed check naming each
    assert proc.returncode == 1, describe(proc)
    assert "OK" not in proc.stdout, describe(proc)  # a failed check never says OK
    for system in ("crm", "helpdesk"):
        assert re.search(rf"{system}: not covered: .*memory.*ERASURE_BLOCK_PLUGINS", proc.stderr)
    assert not (world["config"].parent / "state").exists()


# happy paths ---------------------------------------------------------------------------

def test_erase_removes_the_subject_and_keeps_lookalikes(world):
    proc = run_cli("erase", "--email", "alice@example.com", "--customer-id", "C-1001",
                   "--verified", "--ticket", "T-1", config=world["config"])
    assert proc.returncode == 1, describe(proc)  # partial: see below
    for system, outcome in (("crm", "partial"), ("helpdesk", "completed")):
        row = table_row(proc.stdout, RECEIPT, system)
        assert (row["action"], row["outcome"]) == ("delete", outcome), row
        assert refs(world[system]) == OTHERS[system]
        assert sorted(journal(world[system])) == sorted((r, "done") for r in ALICE[system])
    # Bob shares Alice's phone: found for review, never erased; nobody decided on it
    # (`erasure review`), so crm is partial, with the reason.
    assert table_row(proc.stdout, RECEIPT, "crm")["review"] == "1"
    assert "crm: 1 review items undecided" in proc.stdout
    bodies = receipt_bodies(world["config"])
    assert len(bodies) == 2
    for b in bodies:
        assert b["subject_verified"] is True and b["unverified_override"] is None
        assert b["ticket"] == "T-1"
    # The receipts name no raw identifier.
    text = json.dumps(bodies)
    for raw in ("alice", "C-1001", PHONE, "contact/1", "user/77"):
        assert raw not in text


def test_override_unverified_runs_and_is_recorded(world):
    reason = "identity checked by phone call"
    proc = run_cli("erase", "--email", "alice@example.com", "--override-unverified", reason,
                   config=world["config"])
    assert proc.returncode == 1 and "1 partial" in proc.stderr, describe(proc)  # Bob's
    assert refs(world["crm"]) == OTHERS["crm"]
    out = world["config"].parent / "receipts.json"
    proc = run_cli("receipts", "export", "-o", str(out), config=world["config"])
    assert proc.returncode == 0, describe(proc)
    bodies = [r["body"] for r in json.loads(out.read_text())["receipts"]]
    assert {b["system"] for b in bodies} == {"crm", "helpdesk"}
    from erasure.config import load_config
    from erasure.keys import KeyRing

    digest = KeyRing.load(load_config(world["config"]).host).digest
    for b in bodies:  # the reason's keyed hash: the text may name the person
        assert b["unverified_override"] == digest("reason", "unverified-override",
                                                  b["request"], reason)
        assert b["subject_verified"] is False


def test_find_dry_run_changes_nothing(world):
    proc = run_cli("find", "--dry-run", "--email", "alice@example.com", config=world["config"])
    assert proc.returncode == 0, describe(proc)
    crm = table_row(proc.stdout, PLAN, "crm")
    # Alice's contact by email, and Bob's by the phone seen on it (review only)
    assert (crm["found"], crm["would act on"], crm["review only"]) == ("2", "1", "1"), crm
    helpdesk = table_row(proc.stdout, PLAN, "helpdesk")
    # the ticket is found through the customer id seen on Alice's CRM contact
    assert (helpdesk["found"], helpdesk["would act on"]) == ("2", "2"), helpdesk
    assert_untouched(world)
    proc = run_cli("status", "--all", config=world["config"])
    assert proc.returncode == 0, describe(proc)
    assert not RID.search(proc.stdout), proc.stdout
    if ledger_path(world["config"]).exists():
        assert ledger_query(world["config"], "SELECT count(*) FROM requests") == [(0,)]


def test_erase_dry_run_changes_nothing(world):
    proc = run_cli("erase", "--dry-run", "--email", "alice@example.com", "--verified",
                   config=world["config"])
    assert proc.returncode == 0, describe(proc)
    row = table_row(proc.stdout, PLAN, "crm")
    assert (row["action"], row["would act on"]) == ("delete", "1"), row
    assert_untouched(world)
    assert not ledger_path(world["config"]).exists() or ledger_query(
        world["config"], "SELECT count(*) FROM requests") == [(0,)]


def test_find_changes_nothing_and_exits_0(world):
    proc = run_cli("find", "--email", "alice@example.com", config=world["config"])
    assert_untouched(world)
    assert {b["outcome"] for b in receipt_bodies(world["config"])} == {"completed"}
    assert proc.returncode == 0, describe(proc)


def test_request_create_run_status_receipts(world):
    config = world["config"]
    rid = create_request(config, "--type", "erasure", "--email", "alice@example.com",
                         "--verified", "--ticket", "HELP-42")
    assert_untouched(world)  # recorded, not run
    row = table_row(run_cli("status", config=config).stdout, STATUS, rid)
    assert (row["ticket"], row["type"], row["status"]) == ("HELP-42", "erasure", "open"), row
    proc = run_cli("run", config=config)
    assert proc.returncode == 1, describe(proc)  # crm partial: Bob's contact undecided
    assert refs(world["crm"]) == OTHERS["crm"]
    assert refs(world["helpdesk"]) == OTHERS["helpdesk"]
    open_now, every = run_many(["status"], ["status", "--all"], config=config)
    assert rid not in open_now.stdout  # finished: not open any more
    assert table_row(every.stdout, STATUS, rid)["status"] == "done: partial"
    proc = run_cli("receipts", "show", rid, config=config)
    assert proc.returncode == 0, describe(proc)
    for system, outcome in (("crm", "partial"), ("helpdesk", "completed")):
        row = table_row(proc.stdout, RECEIPT, system)
        assert (row["action"], row["outcome"]) == ("delete", outcome), row
    # the raw identifiers are purged from the ledger once the request is done
    assert ledger_query(config, "SELECT identifiers FROM requests") == [(None,)]
    assert ledger_query(config, "SELECT DISTINCT state FROM tasks") == [(None,)]


def test_receipts_export_and_offline_verify(world, tmp_path):
    config = world["config"]
    proc = run_cli("erase", "--email", "alice@example.com", "--verified", config=config)
    assert proc.returncode == 1 and "1 partial" in proc.stderr, describe(proc)  # Bob's
    export = tmp_path / "f.json"
    (tmp_path / "other").mkdir()
    other = write_config(tmp_path / "other", {})
    exported, key_proc, other_key_proc = run_many(
        ["receipts", "export", "-o", str(export), "-c", str(config)],
        ["keys", "show-public", "-c", str(config)],
        ["keys", "show-public", "-c", str(other)])
    assert exported.returncode == 0, describe(exported)
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    key, other_key = key_proc.stdout.strip(), other_key_proc.stdout.strip()
    assert key and other_key and key != other_key

    data = json.loads(export.read_text())
    assert len(data["receipts"]) == 2
    edited = json.loads(json.dumps(data))  # one receipt's body edited
    edited["receipts"][1]["body"]["counts"]["found"] = 0
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    removed = json.loads(json.dumps(data))  # one receipt taken out of the chain
    del removed["receipts"][0]
    (tmp_path / "removed.json").write_text(json.dumps(removed))
    ok, bad_body, bad_chain, wrong_key, no_key = run_many(
        ["receipts", "verify", "--file", str(export), "--public-key", key],
        ["receipts", "verify", "--file", str(tmp_path / "edited.json"), "--public-key", key],
        ["receipts", "verify", "--file", str(tmp_path / "removed.json"), "--public-key", key],
        ["receipts", "verify", "--file", str(export), "--public-key", other_key],
        ["receipts", "verify", "--file", str(export)])
    assert ok.returncode == 0, describe(ok)
    assert "OK: 2 receipts" in ok.stdout
    assert bad_body.returncode == 1, describe(bad_body)
    assert bad_body.stderr.startswith("FAILED: receipt 2") and bad_body.stdout == ""
    assert "receipt 1" not in bad_body.stderr
    assert bad_chain.returncode == 1, describe(bad_chain)
    assert wrong_key.returncode == 1, describe(wrong_key)
    assert_one_line_error(no_key, "--public-key")  # the key inside the file proves nothing


def test_misconfigured_system_shows_in_systems_check(world, tmp_path):
    # What a run then does with it (blocked, `erasure retry`): test_failure_classes.py
    config = write_config(tmp_path, {
        "crm": memory_system(world["crm"]),
        "archive": memory_system(tmp_path / "no-such-folder" / "archive.json"),
    }, name="failing.toml")
    proc = run_cli("systems", "check", config=config)
    assert proc.returncode == 1, describe(proc)
    assert re.search(r"archive: .*no-such-folder", proc.stdout), proc.stdout
    assert re.search(r"crm: ok", proc.stdout), proc.stdout


def test_blocked_plugin_leaves_its_systems_waiting_and_exits_1(world):
    # A plugin blocked (or broken) is for an operator to fix: its systems' tasks wait,
    # blocked with the reason, the request stays open; nothing is ended "not covered".
    config = world["config"]
    rid = create_request(config, "--type", "erasure", "--email", "alice@example.com",
                         "--verified")
    proc = run_cli("run", config=config, env=cli_env({"ERASURE_BLOCK_PLUGINS": "memory,sql"}))
    assert proc.returncode == 1, describe(proc)
    assert_untouched(world)
    assert receipt_bodies(config, rid) == []
    for system in ("crm", "helpdesk"):
        assert any(f"{rid} {system}: blocked" in line and "ERASURE_BLOCK_PLUGINS" in line
                   for line in error_lines(proc)), describe(proc)
    status = run_cli("status", config=config)
    assert table_row(status.stdout, STATUS, rid)["status"] == "open", status.stdout
    assert ledger_query(config, "SELECT identifiers IS NOT NULL FROM requests") == [(1,)]


def test_systems_and_connectors_list(world, tmp_path):
    config = write_config(tmp_path, {
        "crm": memory_system(world["crm"]),
        "tax": memory_system(tmp_path / "tax.json", policy="retain",
                             reason="invoices kept 10 years"),
    }, name="list.toml")
    blocked = cli_env({"ERASURE_BLOCK_PLUGINS": "memory,sql"})
    systems, all_connectors = run_many(["systems", "list", "-c", str(config)],
                                       ["connectors", "list"], env=cli_env(block=None))
    systems_blocked, connectors_blocked = run_many(
        ["systems", "list", "-c", str(config)], ["connectors", "list"], env=blocked)
    for proc in (systems, all_connectors, connectors_blocked):
        assert proc.returncode == 0, describe(proc)
    # a blocked plugin leaves its systems not covered: the listing says so and fails
    assert systems_blocked.returncode == 1, describe(systems_blocked)
    assert "error: crm: not covered" in systems_blocked.stderr, describe(systems_blocked)
    for name, policy in (("crm", "erase"), ("tax", "retain")):
        row = table_row(systems.stdout, SYSTEMS, name)
        assert row == {"system": name, "connector": "memory", "version": "1.0",
                       "policy": policy, "status": "ok"}, row
    assert "not covered" in table_row(systems_blocked.stdout, SYSTEMS, "crm")["status"]
    row = table_row(all_connectors.stdout, CONNECTORS, "memory")
    assert row == {"connector": "memory", "version": "1.0", "plugin": "memory",
                   "capabilities": "anonymise, delete, export, find, lookup, object, rectify, "
                                   "restrict"}, row
    assert "memory" not in connectors_blocked.stdout


def test_extend_moves_the_due_date(world):
    config = world["config"]
    rid = create_request(config, "--type", "access", "--email", "alice@example.com",
                         "--verified", "--received", "2026-01-31")
    row = table_row(run_cli("status", config=config).stdout, STATUS, rid)
    assert (row["received"], row["due"]) == ("2026-01-31", "2026-02-28"), row  # clamped
    proc = run_cli("request", "extend", rid, "--months", "2", "--reason", "complex",
                   config=config)
    assert proc.returncode == 0, describe(proc)
    assert "2026-04-30" in proc.stdout
    row = table_row(run_cli("status", config=config).stdout, STATUS, rid)
    assert row["due"] == "2026-04-30" and "(extended)" in row["status"], row
    (stored,), = ledger_query(config, "SELECT extension_reason FROM requests")
    assert stored.startswith("r1:") and "complex" not in stored  # encrypted with the request
    rid2 = create_request(config, "--type", "access", "--email", "bob@example.net",
                          "--verified", "--received", "2020-01-01")
    again, too_long, no_reason, status = run_many(
        ["request", "extend", rid, "--reason", "again"],
        ["request", "extend", rid2, "--months", "3", "--reason", "x"],
        ["request", "extend", rid2, "--reason", " "],
        ["status"], config=config)
    assert_one_line_error(again, "already extended")
    assert_one_line_error(too_long, "1 or 2 months")
    assert_one_line_error(no_reason, "reason")
    assert "OVERDUE" in table_row(status.stdout, STATUS, rid2)["days left"]
    due = dict(ledger_query(config, "SELECT id, due_at FROM requests"))
    assert due[rid][:10] == "2026-04-30" and due[rid2][:10] == "2020-02-01"


def test_require_approval_stops_after_find(world, tmp_path):
    config = write_config(tmp_path, {n: memory_system(world[n]) for n in ("crm", "helpdesk")},
                          host={"require_approval": True}, name="approval.toml")
    proc = run_cli("erase", "--email", "alice@example.com", "--verified", config=config)
    assert proc.returncode == 0, describe(proc)
    ids = RID.findall(proc.stdout)
    assert ids and "awaiting approval" in proc.stdout, describe(proc)
    rid = ids[0]
    assert_untouched(world)
    assert run_cli("run", config=config).returncode == 0
    assert_untouched(world)  # run does not go past the gate either
    row = table_row(run_cli("status", config=config).stdout, STATUS, rid)
    assert row["status"] == "awaiting_approval", row
    assert receipt_bodies(config) == []

    # Bob's contact (the shared phone) is left as it is, as the operator decides
    proc = run_cli("review", rid, "--exclude-all", "--by", "OPS-1", config=config)
    assert proc.returncode == 0, describe(proc)
    proc = run_cli("approve", rid, config=config)
    assert proc.returncode == 0, describe(proc)
    assert_one_line_error(run_cli("approve", rid, config=config), "not awaiting approval")
    assert_untouched(world)  # approving alone erases nothing
    proc = run_cli("run", config=config)
    assert proc.returncode == 0, describe(proc)
    assert refs(world["crm"]) == OTHERS["crm"]
    assert refs(world["helpdesk"]) == OTHERS["helpdesk"]
    assert {b["outcome"] for b in receipt_bodies(config, rid)} == {"completed"}


def test_require_approval_does_not_gate_access(world, tmp_path):
    config = write_config(tmp_path, {"crm": memory_system(world["crm"])},
                          host={"require_approval": True}, name="approval.toml")
    rid = create_request(config, "--type", "access", "--email", "alice@example.com",
                         "--verified")
    proc = run_cli("run", config=config)
    # exported without approval; Bob's contact (the shared phone) left out, undecided
    assert proc.returncode == 1 and "1 partial" in proc.stderr, describe(proc)
    assert [b["action"] for b in receipt_bodies(config, rid)] == ["export"]
    assert (tmp_path / "state" / "exports" / f"{rid}.zip").exists()
    assert_untouched(world)


TASKS = ("request", "system", "state", "next try (UTC)", "last error")


def test_a_processor_confirms_later_status_shows_it_and_confirm_ends_it(world, tmp_path):
    config = write_config(tmp_path, {
        "crm": memory_system(world["crm"]),
        "carrier": {"connector": "memory-processor", "inbox": "carrier"}}, name="p.toml")
    proc = run_cli("erase", "--email", "alice@example.com", "--verified", config=config)
    assert proc.returncode == 0, describe(proc)
    (rid,) = set(RID.findall(proc.stdout))
    assert "some systems finish later" in proc.stdout
    assert "1 awaiting confirmation" in proc.stderr
    assert refs(world["crm"]) == OTHERS["crm"]  # the searchable system is done already
    status = run_cli("status", config=config)
    row = table_row(status.stdout, TASKS, rid)
    assert (row["system"], row["state"]) == ("carrier", "awaiting confirmation"), row
    again = run_cli("run", config=config)  # nothing due: the notice is not sent twice
    assert again.returncode == 0 and "finished" not in again.stderr, describe(again)
    done = run_cli("confirm", rid, "carrier", "--reference", "CARRIER-5521", config=config)
    assert done.returncode == 0, describe(done)
    assert "request ended partial" in done.stdout  # crm: Bob's contact undecided
    bodies = {b["system"]: b for b in receipt_bodies(config)}
    assert bodies["carrier"]["confirmation"] == "CARRIER-5521"
    assert bodies["carrier"]["outcome"] == "completed"
    assert bodies["crm"]["not_acted"] == ["1 review items undecided"]
    notice = bodies["carrier"]["notice"]  # Art. 19: when told, by what, confirmed when
    assert notice["confirmation"] == "CARRIER-5521" and notice["reminders"] == 0
    assert notice["sent_at"] <= notice["confirmed_at"] and len(notice["messages"]) == 1
    assert "alice" not in json.dumps(bodies["carrier"])
    retry = run_cli("retry", rid, config=config)
    line = assert_one_line_error(retry, "has ended")
    assert "alice" not in line


def test_a_confirmation_past_the_due_date_is_overdue_and_an_unknown_processor_is_refused(
        world, tmp_path):
    config = write_config(tmp_path, {
        "crm": memory_system(world["crm"]),
        "carrier": {"connector": "memory-processor", "inbox": "carrier"}}, name="p.toml")
    late = create_request(config, "--type", "erasure", "--email", "alice@example.com",
                          "--verified", "--received", "2020-01-01")
    soon = create_request(config, "--type", "erasure", "--email", "bob@example.net",
                          "--verified")
    assert run_cli("run", config=config).returncode == 0
    status = run_cli("status", config=config)
    assert "confirmation overdue" in table_row(status.stdout, TASKS, late)["state"]
    assert table_row(status.stdout, TASKS, soon)["state"] == "awaiting confirmation"
    for system in ("nope", "NOPE;drop"):
        proc = run_cli("confirm", soon, system, "--reference", "R-1", config=config)
        assert proc.returncode == 2, describe(proc)
        assert_one_line_error(proc, "no system")
    assert table_row(run_cli("status", config=config).stdout, TASKS, soon)["state"] \
        == "awaiting confirmation"


def test_the_state_folder_and_ledger_are_private(world, tmp_path):
    old = tmp_path / "state"
    old.mkdir(mode=0o755)  # as an earlier version left it
    old.chmod(0o755)
    proc = run_cli("erase", "--email", "alice@example.com", "--verified",
                   config=world["config"])
    assert "finished 1 request(s)" in proc.stderr, describe(proc)
    state = world["config"].parent / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for f in state.rglob("*"):
        mode = stat.S_IMODE(f.stat().st_mode)
        assert mode == (0o700 if f.is_dir() else 0o600), (f.name, oct(mode))
    assert (state / "ledger.db").exists()


def test_importing_the_same_file_twice_records_each_request_once(world, tmp_path):
    config = world["config"]
    rows = tmp_path / "requests.csv"
    rows.write_text(
        "type,email,customer_id,ticket,verified\n"
        "erasure,alice@example.com,C-1001,T-1,yes\n"
        "access,bob@example.net,,T-2,yes\n"
        "access,bob@example.net,,,yes\n", encoding="utf-8")  # no ticket: always new
    first = run_cli("request", "import", str(rows), config=config)
    assert first.returncode == 0, describe(first)
    assert "recorded 3 requests" in first.stderr
    again = run_cli("request", "import", str(rows), config=config)
    assert again.returncode == 0, describe(again)
    assert "recorded 1 requests (2 recorded before, not again)" in again.stderr
    first_ids = RID.findall(first.stdout)
    assert RID.findall(again.stdout)[:2] == first_ids[:2]  # the earlier requests' ids
    assert ledger_query(config, "SELECT count(*) FROM requests") == [(4,)]


def test_a_request_key_makes_create_idempotent_and_allow_duplicate_records_again(world):
    config = world["config"]
    args = ("request", "create", "--type", "access", "--email", "bob@example.net",
            "--verified", "--request-key", "msg-<77@mail.example>")
    first = run_cli(*args, config=config)
    assert first.returncode == 0, describe(first)
    again = run_cli(*args, config=config)
    assert again.returncode == 0, describe(again)
    assert RID.findall(again.stdout) == RID.findall(first.stdout)
    assert "recorded before" in again.stderr
    twice = run_cli(*args, "--allow-duplicate", config=config)
    assert twice.returncode == 0, describe(twice)
    assert RID.findall(twice.stdout) != RID.findall(first.stdout)
    assert ledger_query(config, "SELECT count(*) FROM requests") == [(2,)]


def test_systems_check_warns_about_files_others_can_read(world):
    config = world["config"]
    erased = run_cli("erase", "--email", "alice@example.com", "--verified", config=config)
    assert "finished 1 request(s)" in erased.stderr, describe(erased)
    ok = run_cli("systems", "check", config=config)
    assert "can be read by others" not in ok.stderr
    ledger = config.parent / "state" / "ledger.db"
    ledger.chmod(0o644)  # someone "fixed" a permission problem
    warned = run_cli("systems", "check", config=config)
    assert "warning: ledger.db can be read by others than its owner" in warned.stderr


def test_a_phone_in_national_form_is_read_with_the_default_region(tmp_path: Path) -> None:
    """`--phone "0113 000 0002"` (and a CSV's phone) with `default_phone_region = "GB"` is
    +441130000002 in every command that takes one; without a region it is refused in one
    line that says what would accept it."""
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"phone": "+441130000002"})})
    gb = write_config(tmp_path, {"crm": memory_system(crm)},
                      host={"default_phone_region": "GB"})
    bare = write_config(tmp_path, {"crm": memory_system(crm)}, name="bare.toml")
    national = "0113 000 0002"
    rows = tmp_path / "requests.csv"
    rows.write_text(f"type,phone\nfind,{national}\n", encoding="utf-8")
    found, created, imported, refused, refused_create = run_many(
        ["find", "--phone", national, "--json", "-c", str(gb)],
        ["request", "create", "--type", "find", "--phone", national, "-c", str(gb)],
        ["request", "import", str(rows), "-c", str(gb)],
        ["find", "--phone", national, "-c", str(bare)],
        ["request", "create", "--type", "find", "--phone", national, "-c", str(bare)])
    assert found.returncode == 0, found.stderr
    (receipt,) = json.loads(found.stdout)["receipts"]
    assert receipt["body"]["counts"]["found"] == 1, receipt
    assert created.returncode == 0 and imported.returncode == 0, created.stderr + imported.stderr
    ran = run_cli("run", config=gb)
    assert ran.returncode == 0 and ran.stdout.count("finished, completed") == 2, ran.stdout
    for proc in (refused, refused_create):
        assert proc.returncode == 2 and proc.stdout == "", proc.stdout
        (line,) = proc.stderr.strip().splitlines()
        assert "invalid phone number: a national form needs [erasure] default_phone_region" \
            in line, line
