"""Output for scripts (issue 26, item 5): `status --json` and `receipts show --json` print
one JSON document each, in the shape their JSON Schema in docs/ documents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from clihelpers import cli_env, memory_system, run_cli, seed, write_config

DOCS = Path(__file__).parent.parent / "docs"


def schema(name: str) -> dict:
    doc = json.loads((DOCS / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def test_status_and_receipts_as_json_match_their_schemas(tmp_path: Path) -> None:
    crm, mail = tmp_path / "crm.json", tmp_path / "mail.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"}),
               "c/2": ("contact", {"email": "bob@example.org"})})
    seed(mail, {"m/1": ("message", {"email": "bob@example.org"})})
    config = write_config(tmp_path, {
        "crm": memory_system(crm),
        "mail": memory_system(mail, fail_first_calls=1, fail_retry_after=3600)})
    access = run_cli("export", "--email", "ann@example.org", "--verified", "--ticket", "T-1",
                     config=config)  # mail's one outage: deferred, the request stays open
    assert access.returncode == 0, access.stdout + access.stderr
    quiet = write_config(tmp_path, {"crm": memory_system(crm)}, name="crm-only.toml")
    erased = run_cli("erase", "--email", "bob@example.org", "--verified", config=quiet)
    assert erased.returncode == 0, erased.stderr
    shown = run_cli("status", "--all", "--json", config=config)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    jsonschema.validate(status, schema("status.schema.json"))
    by_type = {r["type"]: r for r in status["requests"]}
    assert by_type["access"]["status"] == "open" and by_type["access"]["ticket"] == "T-1"
    assert by_type["erasure"]["outcome"] == "completed"
    tasks = {t["system"]: t for t in status["tasks"]}
    assert tasks["crm"]["waits_for"] == "waits for mail (pending) to be searched"
    assert tasks["mail"]["deferrals"] == 1 and tasks["mail"]["error"]
    rid = by_type["erasure"]["request"]
    receipts = run_cli("receipts", "show", rid, "--json", config=quiet)
    assert receipts.returncode == 0, receipts.stderr
    doc = json.loads(receipts.stdout)
    jsonschema.validate(doc, schema("receipts-show.schema.json"))
    (one,) = doc["receipts"]
    assert one["body"]["counts"]["found"] == 1 and one["body"]["outcome"] == "completed"
    assert "bob@example.org" not in shown.stdout + receipts.stdout


def test_piped_status_is_not_cut_at_80_columns(tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)})
    ticket = "jira:PRIVACY-DESK/2026/" + "7" * 30
    created = run_cli("request", "create", "--type", "erasure", "--email", "ann@example.org",
                      "--verified", "--ticket", ticket, config=config)
    assert created.returncode == 0, created.stderr
    rid = created.stdout.strip()
    env = cli_env()
    del env["COLUMNS"]  # as from cron or a pipe: no terminal, no width given
    status = run_cli("status", config=config, env=env)
    (line,) = [ln for ln in status.stdout.splitlines() if rid in ln]
    assert ticket in line and "…" not in status.stdout and len(line) > 80, status.stdout
    for _ in range(2):
        assert run_cli("request", "create", "--type", "find", "--email", "ann@example.org",
                       "--allow-duplicate", config=config).returncode == 0
    cut = run_cli("status", "--limit", "1", config=config)
    assert sum(ln.startswith("r-") for ln in cut.stdout.splitlines()) == 1, cut.stdout
    assert "and 2 more (`erasure status --limit 3`)" in cut.stdout, cut.stdout
    doc = json.loads(run_cli("status", "--limit", "2", "--json", config=config).stdout)
    assert (len(doc["requests"]), doc["more"]) == (2, 1)


def test_the_schemas_check_with_plain_jsonschema_from_the_docs_folder(tmp_path: Path) -> None:
    """docs/request-result.schema.json refers to the run and receipt shapes by file name;
    they are bundled in it (copies of the files), so `jsonschema.validate(doc, schema)`
    with no registry and no network checks a whole document, run and receipts included."""
    result = json.loads((DOCS / "request-result.schema.json").read_text(encoding="utf-8"))
    for name in ("run.schema.json", "receipts-show.schema.json"):
        assert result["$defs"][name] == schema(name), f"{name}: the bundled copy differs"
    for path in sorted(DOCS.glob("*.schema.json")):  # every $ref of every schema is local
        text = path.read_text(encoding="utf-8")
        refs = re.findall(r'"\$ref": "([^"#]+)', text)
        ids = re.findall(r'"\$id": "[^"]*/([^"/]+)"', text)
        assert set(refs) <= set(ids), (path.name, refs)
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)})
    found = run_cli("find", "--email", "ann@example.org", "--json", config=config)
    assert found.returncode == 0, found.stderr
    doc = json.loads(found.stdout)
    assert doc["run"] is not None and doc["receipts"], doc
    jsonschema.validate(doc, result)  # follows both bundled references
    doc["run"]["unknown"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, result)
