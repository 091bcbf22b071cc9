"""Coverage: what a system can search comes from its connector instance, and a system that
could search none of a request's identifiers is not covered, never "found 0".

The mail connector searches phones only in message bodies, so a mail system without
``search_body`` narrows its class's identifier types (email, phone) to email alone.
"""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

from clihelpers import (
    cli_env,
    describe,
    memory_system,
    receipt_bodies,
    run_cli,
    seed,
    table_row,
    write_config,
)

RID = re.compile(r"\br-[0-9a-f]{16}\b")
PHONE = "+4915112345678"
PLAN = ("system", "connector", "policy", "action", "found", "would act on", "review only")


def _world(tmp_path: Path) -> Path:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"phone": PHONE, "city": "Berlin"})})
    box = mailbox.Maildir(tmp_path / "mail", create=True)
    box.add(b"From: Alice <alice@example.com>\nTo: shop@example.org\nSubject: hi\n\n"
            b"call me on " + PHONE.encode() + b"\n")
    return write_config(tmp_path, {
        "crm": memory_system(crm),
        "archive": {"connector": "mail", "backend": "maildir", "path": str(tmp_path / "mail"),
                    "search_body": False}},
        host={"strong_identifiers": ["email", "phone"]})


def test_a_system_that_can_search_none_of_the_identifiers_is_not_covered(tmp_path):
    config = _world(tmp_path)
    env = cli_env(block=None)
    proc = run_cli("erase", "--phone", PHONE, "--verified", config=config, env=env)
    assert proc.returncode == 1, describe(proc)
    (rid,) = set(RID.findall(proc.stdout))
    bodies = {b["system"]: b for b in receipt_bodies(config, rid)}
    archive = bodies["archive"]
    assert archive["outcome"] == "not_covered", archive
    assert any("searches only email" in e for e in archive["errors"]), archive["errors"]
    assert archive["identifier_types"] == {"searched": [], "verified": []}
    assert archive["verification"]["performed"] is False
    assert bodies["crm"]["outcome"] == "completed"
    assert bodies["crm"]["identifier_types"] == {"searched": ["phone"],
                                                 "verified": ["phone"]}
    proc = run_cli("find", "--dry-run", "--phone", PHONE, config=config, env=env)
    row = table_row(proc.stdout, PLAN, "archive")
    assert "not covered: searches only email" in proc.stdout, describe(proc)
    assert row["found"] == "0", row


def test_the_receipt_lists_the_types_searched_and_verified_per_system(tmp_path):
    config = _world(tmp_path)
    proc = run_cli("erase", "--email", "alice@example.com", "--phone", PHONE, "--verified",
                   config=config, env=cli_env(block=None))
    assert proc.returncode == 0, describe(proc)
    (rid,) = set(RID.findall(proc.stdout))
    bodies = {b["system"]: b for b in receipt_bodies(config, rid)}
    # The archive is searched and verified by email only (its instance's types), never
    # asked for a phone it cannot search; the CRM by both.
    assert bodies["archive"]["identifier_types"] == {"searched": ["email"],
                                                     "verified": ["email"]}
    assert bodies["archive"]["outcome"] == "completed"
    assert bodies["crm"]["identifier_types"] == {"searched": ["email", "phone"],
                                                 "verified": ["email", "phone"]}
    assert bodies["crm"]["counts"]["done"] == 1
    assert list(mailbox.Maildir(tmp_path / "mail", create=False).keys()) == []
