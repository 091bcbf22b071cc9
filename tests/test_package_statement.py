"""The access package states what Art. 15 requires, readably (the page opened in headless
Chromium), and its JSON is the documented format (validated against
docs/package.schema.json); a portability package holds only the portable fields."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from clihelpers import cli_env, describe, run_cli, seed, write_config

ROOT = Path(__file__).parent.parent
SCHEMA = json.loads((ROOT / "docs" / "package.schema.json").read_text(encoding="utf-8"))
CHROMIUM = "/usr/bin/chromium"
BOB = "bob@example.org"

CONTROLLER = {
    "name": "Example Communications Ltd",
    "dpo": "dpo@example.com, +44 20 7946 0000",
    "supervisory_authority": "Information Commissioner's Office, ico.org.uk",
}
CRM_STATEMENT = {
    "purposes": ["providing the service", "billing"],
    "legal_basis": "contract (Art. 6(1)(b))",
    "categories": ["contact details", "contract details"],
    "recipients": ["Salesforce (CRM, processor)", "UKFast (hosting, processor)"],
    "retention": "6 years after the contract ends",
    "retention_criteria": "limitation period for contract claims",
    "source": "you, when you signed up",
    "storage": "United States (Salesforce)",
    "outside_eea": True,
    "safeguards": "standard contractual clauses (Art. 46(2)(c))",
    "portable": ["email", "phone", "address"],
    "labels": {"phone": "Phone number", "score": "Credit score", "vip": "VIP customer",
               "contact": "Contact record"},
}
DESK_STATEMENT = {
    "purposes": ["answering your questions"],
    "legal_basis": "contract (Art. 6(1)(b))",
    "categories": ["messages"],
    "recipients": ["Zendesk (support, processor)"],
    "retention": "2 years after the ticket closes",
    "retention_criteria": "how long complaints are taken further",
    "source": "you, when you wrote to us",
    "storage": "Germany (Zendesk EU)",
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    crm, desk = tmp_path / "crm.json", tmp_path / "desk.json"
    seed(crm, {"contact/bob": ("contact", {
        "email": BOB, "phone": "+4930123456", "address": "1 Old Road",
        "score": 712, "vip": False, "churn_flag": None})})
    seed(desk, {"user/7": ("user", {"email": BOB, "note": "asked about roaming"})})
    path = write_config(tmp_path, {
        "crm": {"connector": "memory", "path": str(crm), "statement": CRM_STATEMENT},
        "desk": {"connector": "memory", "path": str(desk), "statement": DESK_STATEMENT},
    })
    text = path.read_text(encoding="utf-8")
    controller = "\n".join(f"{k} = {json.dumps(v)}" for k, v in CONTROLLER.items())
    path.write_text(text + f"\n[controller]\n{controller}\n", encoding="utf-8")
    return path


def _package(config: Path, kind: str) -> Path:
    proc = run_cli(kind, "--email", BOB, "--verified", config=config)
    assert proc.returncode == 0, describe(proc)
    (path,) = (config.parent / "state" / "exports").glob("*.zip")
    return path


def _chromium_dom(html_file: Path, tmp_path: Path) -> str:
    """The page as headless Chromium (Debian's) parsed it."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed: `make test` installs Debian's chromium "
                    "as root; or apt-get install chromium")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--dump-dom", html_file.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    shutil.rmtree(profile, ignore_errors=True)
    return proc.stdout


class _Sections(HTMLParser):
    """Text per section id, and every table header cell's text."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.headers: list[str] = []
        self._section: str | None = None
        self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self._section = dict(attrs).get("id") or ""
            self.sections[self._section] = []
        self._in_th = tag == "th"

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        if tag == "th":
            self._in_th = False

    def handle_data(self, data: str) -> None:
        if self._section is not None:
            self.sections[self._section].append(data)
        if self._in_th:
            self.headers.append(data.strip())

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.sections[section]).split())


def _words(value: Any) -> list[str]:
    return list(value) if isinstance(value, list) else [value]


def test_the_access_page_states_every_field_in_chromium(config, tmp_path) -> None:
    with zipfile.ZipFile(_package(config, "export")) as zf:
        zf.extract("index.html", tmp_path)
    page = _Sections()
    page.feed(_chromium_dom(tmp_path / "index.html", tmp_path))
    assert set(page.sections) == {"controller", "system-crm", "system-desk"}
    controller = page.text("controller")
    for value in CONTROLLER.values():
        assert value in controller
    assert "rectification of inaccurate data (Art. 16)" in controller  # the default rights
    for section, statement in (("system-crm", CRM_STATEMENT), ("system-desk", DESK_STATEMENT)):
        text = page.text(section)
        for key in ("purposes", "legal_basis", "categories", "recipients", "retention",
                    "retention_criteria", "source", "storage"):
            for word in _words(statement[key]):
                assert word in text, f"{section}: {key} not shown"
    crm = page.text("system-crm")
    assert CRM_STATEMENT["safeguards"] in crm
    assert "Safeguards" not in page.text("system-desk")  # stored in the EEA: none owed
    # Labels instead of field names; values a person reads, never None/False.
    assert {"Phone number", "Credit score", "VIP customer"} <= set(page.headers)
    assert not {"phone", "score", "vip", "contact"} & set(page.headers)
    assert "Contact record" in crm
    assert "VIP customer no" in crm and "churn_flag not recorded" in crm
    for raw in ("None", "False", "True"):
        assert raw not in crm.split()


def test_the_package_json_is_the_documented_format(config) -> None:
    with zipfile.ZipFile(_package(config, "export")) as zf:
        whole = json.loads(zf.read("package.json"))
    jsonschema.validate(whole, SCHEMA)
    assert whole["statement"]["systems"]["crm"]["recipients"] == CRM_STATEMENT["recipients"]
    (contact,) = whole["systems"]["crm"]["records"]["contact"]
    assert contact["score"] == 712  # access: every field (Art. 15)


def test_a_portability_package_holds_only_the_portable_fields(config) -> None:
    with zipfile.ZipFile(_package(config, "portability")) as zf:
        whole = json.loads(zf.read("package.json"))
        crm_file = json.loads(zf.read("crm.json"))
        csv_text = zf.read("crm/contact.csv").decode()
    jsonschema.validate(whole, SCHEMA)
    (contact,) = whole["systems"]["crm"]["records"]["contact"]
    assert contact == {"email": BOB, "phone": "+4930123456", "address": "1 Old Road"}
    assert crm_file["records"]["contact"] == [contact]
    assert "score" not in csv_text and "712" not in csv_text
    # a system that marks nothing: every field
    assert whole["systems"]["desk"]["records"]["user"] == [
        {"email": BOB, "note": "asked about roaming"}]


def test_the_schema_rejects_a_package_missing_a_statement_field(config) -> None:
    with zipfile.ZipFile(_package(config, "export")) as zf:
        whole = json.loads(zf.read("package.json"))
    del whole["statement"]["systems"]["crm"]["recipients"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(whole, SCHEMA)


def test_config_check_warns_of_each_missing_statement_field(tmp_path) -> None:
    path = write_config(tmp_path, {
        "crm": {"connector": "memory", "path": str(tmp_path / "crm.json"),
                "statement": {**DESK_STATEMENT, "recipients": [], "outside_eea": True}},
        "desk": {"connector": "memory", "path": str(tmp_path / "desk.json")},
    })
    proc = run_cli("config", "check", config=path)
    assert proc.returncode == 0, describe(proc)
    warnings = {line.split(":")[0].removeprefix("warning").strip()
                for line in proc.stderr.splitlines() if line.startswith("warning: ")}
    warned = {line.split(": ")[1] for line in proc.stderr.splitlines()
              if line.startswith("warning: ")}
    assert warnings == {""}
    assert {"systems.crm.statement.recipients", "systems.crm.statement.safeguards",
            "controller.name", "controller.dpo", "controller.supervisory_authority",
            *(f"systems.desk.statement.{k}" for k in (
                "purposes", "legal_basis", "categories", "recipients", "retention",
                "retention_criteria", "source", "storage"))} == warned
    # stderr a pipe, no COLUMNS (cron, `2>&1 | grep`): still one line per warning
    narrow = {k: v for k, v in cli_env().items() if k != "COLUMNS"}
    piped = run_cli("config", "check", config=path, env=narrow)
    assert piped.returncode == 0, describe(piped)
    assert piped.stderr.splitlines() == proc.stderr.splitlines(), piped.stderr
    assert any(len(line) > 80 for line in piped.stderr.splitlines()), piped.stderr
    bad = write_config(tmp_path, {"crm": {"connector": "memory", "path": "x.json",
                                          "statement": {"purpose": ["typo"]}}}, name="bad.toml")
    proc = run_cli("config", "check", config=bad)
    assert proc.returncode == 2 and "systems.crm.statement.purpose: unknown key" in proc.stderr
