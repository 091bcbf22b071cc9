"""What a person types besides identifiers, through the CLI: a ticket or confirmation is a
reference (``ticket_pattern``) or the command is refused; a reason is kept encrypted with
the request (shredded with it) and a receipt shows only its keyed hash; and no identifier
given, nor a reason, appears in any receipt or in the ledger file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from clihelpers import (
    describe,
    error_lines,
    ledger_path,
    ledger_query,
    memory_system,
    receipt_bodies,
    run_cli,
    run_many,
    seed,
    stored_items,
    write_config,
)

from erasure.config import load_config
from erasure.keys import KeyRing

EMAIL = "alice@example.com"
PHONE = "+4915112345678"
NAME = "Alice Liddell"
IP = "203.0.113.77"
CUSTOMER = "C-1001"
ITEMS = {
    "contact/1": ("contact", {"email": EMAIL, "phone": PHONE, "customer_id": CUSTOMER,
                              "name": NAME, "ip": IP}),
    "contact/2": ("contact", {"email": "bob@example.net"}),
}
NEW_NAME = "Alice Pleasance Liddell"
PERSONAL_TICKET = "zed@example.org asked to be forgotten"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    seed(tmp_path / "crm.json", ITEMS)
    return write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")})


def refused(proc, what: str) -> None:
    """Exit 2, one line naming the option, the value not echoed."""
    assert proc.returncode == 2, describe(proc)
    (line,) = error_lines(proc)
    assert line.startswith("error: ") and what in line and "reference" in line, line
    assert "zed" not in line and "example" not in line, line


def nothing_recorded(config: Path) -> None:
    db = ledger_path(config)
    if db.exists():
        assert ledger_query(config, "SELECT count(*) FROM requests") == [(0,)]
    assert set(stored_items(config.parent / "crm.json")) == set(ITEMS)


def test_a_ticket_that_is_not_a_reference_is_refused_on_every_path(config, tmp_path):
    csv_file = tmp_path / "requests.csv"
    with csv_file.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["type", "email", "ticket", "verified"])
        w.writerow(["access", "bob@example.net", "T-1", "yes"])
        w.writerow(["erasure", EMAIL, PERSONAL_TICKET, "yes"])
    bad = ("--ticket", PERSONAL_TICKET)
    procs = run_many(
        ["request", "create", "--type", "erasure", "--email", EMAIL, "--verified", *bad],
        ["erase", "--email", EMAIL, "--verified", *bad],
        ["export", "--email", EMAIL, "--verified", *bad],
        ["find", "--email", EMAIL, *bad],
        ["find", "--dry-run", "--email", EMAIL, *bad],
        ["erase", "--email", EMAIL, "--verified", "--ticket", "T 1"],  # a space
        ["erase", "--email", EMAIL, "--verified", "--ticket", "T-" + "1" * 100],  # too long
        ["request", "import", str(csv_file)],
        ["confirm", "r-0123456789abcdef", "crm", "--reference", PERSONAL_TICKET],
        config=config)
    for proc in procs[:-1]:
        refused(proc, "--ticket")
    assert "requests.csv:3" in procs[-2].stderr  # the CSV's line; its first row not kept
    refused(procs[-1], "--reference")
    nothing_recorded(config)


def test_references_pass_and_the_pattern_is_configurable(config, tmp_path):
    ok = run_cli("erase", "--email", EMAIL, "--verified", "--ticket", "jira:OPS/7#c_1.2",
                 config=config)
    assert ok.returncode == 0, describe(ok)
    assert {b["ticket"] for b in receipt_bodies(config)} == {"jira:OPS/7#c_1.2"}
    seed(tmp_path / "hd.json", ITEMS)
    strict = write_config(tmp_path, {"hd": memory_system(tmp_path / "hd.json")},
                          host={"ticket_pattern": "HELP-[0-9]{1,6}"}, name="strict.toml")
    wrong, right = run_many(["find", "--email", EMAIL, "--ticket", "T-1"],
                            ["find", "--email", EMAIL, "--ticket", "HELP-42"], config=strict)
    refused(wrong, "--ticket")
    assert right.returncode == 0, describe(right)
    broken = write_config(tmp_path, {}, host={"ticket_pattern": "HELP-[0-9"}, name="bad.toml")
    proc = run_cli("find", "--email", EMAIL, "--ticket", "T-1", config=broken)
    assert proc.returncode == 2 and "ticket_pattern" in proc.stderr, describe(proc)


def _digest(config: Path, *parts: str) -> str:
    return KeyRing.load(load_config(config).host).digest(*parts)


def test_reasons_are_encrypted_hashed_on_receipts_and_no_identifier_is_anywhere(config):
    override = "zed@example.org asked by phone for Alice Liddell"
    extension = f"Alice Liddell ({PHONE}) sent 40 boxes of letters"
    identifiers = ["--email", EMAIL, "--phone", PHONE, "--customer-id", CUSTOMER,
                   "--name", NAME, "--ip", IP]
    # an access request extended with a reason, a rectification, an erasure overridden
    access = run_cli("request", "create", "--type", "access", "--verified", *identifiers,
                     "--ticket", "T-1", config=config)
    assert access.returncode == 0, describe(access)
    rid_access = access.stdout.strip()
    extend = run_cli("request", "extend", rid_access, "--reason", extension, config=config)
    assert extend.returncode == 0, describe(extend)
    (stored_extension,) = ledger_query(config, "SELECT extension_reason FROM requests")[0]
    assert stored_extension.startswith("r1:") and "Alice" not in stored_extension
    assert run_cli("run", config=config).returncode == 0
    rectify = run_cli("rectify", *identifiers, "--set", f"name={NEW_NAME}", "--verified",
                      "--ticket", "T-3", config=config)
    assert rectify.returncode == 0, describe(rectify)
    assert stored_items(config.parent / "crm.json")["contact/1"]["fields"]["name"] == NEW_NAME
    erase = run_cli("erase", *identifiers, "--override-unverified", override,
                    "--ticket", "T-2", config=config)
    assert erase.returncode == 0, describe(erase)
    assert set(stored_items(config.parent / "crm.json")) == {"contact/2"}

    (rid_erase,) = [r for (r,) in ledger_query(
        config, "SELECT id FROM requests WHERE type = 'erasure'")]
    bodies = receipt_bodies(config, rid_erase)
    assert bodies and {b["unverified_override"] for b in bodies} == {
        _digest(config, "reason", "unverified-override", rid_erase, override)}
    # the request ended: its key is gone, so the encrypted reasons are unreadable for good
    assert ledger_query(config, "SELECT count(*) FROM request_keys") == [(0,)]

    export = config.parent / "receipts.json"
    proc = run_cli("receipts", "export", "-o", str(export), config=config)
    assert proc.returncode == 0, describe(proc)
    exported = export.read_bytes()
    assert len(json.loads(exported)["receipts"]) == 3
    files = {"receipts export": exported}
    for db in ledger_path(config).parent.glob("ledger.db*"):
        files[db.name] = db.read_bytes()
    secrets = [EMAIL, "alice@", PHONE, PHONE[1:], CUSTOMER, NAME, "Liddell", IP,
               "zed@example.org", override, extension, "40 boxes", NEW_NAME, "Pleasance"]
    for where, data in files.items():
        for text in secrets:
            for form in {text, text.lower(), text.upper()}:
                assert form.encode() not in data, f"{text!r} in {where}"
                assert form.encode("utf-16-le") not in data, f"{text!r} in {where}"
