"""``erasure new-connector`` writes a distribution that passes its own tests as it is, with
no skip; bad input writes nothing. The contract suite turns red for each classic bug
planted in the scaffold's connector (a mutation check; the memory connector's is in
tests/test_contract_catches_bugs.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from clihelpers import describe, run_cli, run_many
from test_docs import LONG, pip_install_and_list

from erasure.scaffold import connector_files

#: plugins that cost seconds to load in every in-process run and add nothing here
FAST = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio")


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("scaffold")
    proc = run_cli("new-connector", "acme_crm", "--dir", str(parent))
    assert proc.returncode == 0, describe(proc)
    dist = parent / "erasure-acme-crm"
    assert f"wrote {dist}" in proc.stdout
    return dist


def test_the_distribution_has_every_part(scaffold: Path) -> None:
    files = {str(p.relative_to(scaffold)) for p in scaffold.rglob("*") if p.is_file()}
    assert files == {"pyproject.toml", "README.md", "src/erasure_acme_crm/__init__.py",
                     "src/erasure_acme_crm/connector.py", "src/erasure_acme_crm/fake.py",
                     "tests/test_contract.py"}
    project = tomllib.loads((scaffold / "pyproject.toml").read_text())["project"]
    assert project["name"] == "erasure-acme-crm"
    assert any(re.fullmatch(r"erasure-orchestrator>=\d[\d.]*", d)
               for d in project["dependencies"]), project["dependencies"]
    assert project["entry-points"]["erasure.connectors"] == {"acme-crm": "erasure_acme_crm"}
    # no placeholder link (a bare host): a link in the README leads somewhere
    readme = (scaffold / "README.md").read_text()
    links = re.findall(r"\]\((\w+://[^)]*)\)", readme) + re.findall(r"<(\w+://[^>]*)>", readme)
    assert not [u for u in links if not re.fullmatch(r"\w+://[^/]+/\S+", u)], links
    assert "erasure-orchestrator" in readme


def test_its_tests_pass_out_of_the_box_with_no_skip(scaffold: Path,
                                                    pytester: pytest.Pytester) -> None:
    # in process (pytester), as a user's `pytest` in the folder would run them
    pytester.syspathinsert(scaffold / "src")
    result = pytester.inline_run(str(scaffold / "tests"), *FAST)
    passed, skipped, failed = result.listoutcomes()
    # the whole contract suite (every declared capability exercised, the others refused,
    # the large scenario, the deferred jobs) and the error classification tests
    assert len(passed) >= 40
    assert not skipped and not failed, [r.nodeid for r in (*skipped, *failed)]


def test_bad_input_writes_nothing(tmp_path: Path, scaffold: Path) -> None:
    existing = scaffold.parent
    bad_name, exists, no_dir = run_many(
        ["new-connector", "Acme-CRM", "--dir", str(tmp_path)],
        ["new-connector", "acme_crm", "--dir", str(existing)],
        ["new-connector", "acme", "--dir", str(tmp_path / "missing")])
    for proc, says in ((bad_name, "connector name 'Acme-CRM' is not valid"),
                       (exists, "already exists"), (no_dir, "is not a folder")):
        assert proc.returncode == 2, describe(proc)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], describe(proc)
    assert list(tmp_path.iterdir()) == []
    assert sorted(p.name for p in existing.iterdir()) == ["erasure-acme-crm"]


# The mutation check: each bug planted in a scaffold of its own (its own package name, so
# in-process runs never share a module), the relevant contract tests run by pytester.

#: (the line of connector.py to replace, the bug, -k selection, the tests that must fail)
MUTANTS = {
    "substring_over_erasure": (
        '"match": "exact"', '"match": "contains"', "lookalike or absent",
        {"test_find_never_matches_a_lookalike", "test_find_absent_subject_returns_nothing"}),
    "no_op_delete": (
        "        ctx = current_call()\n        by_subject",
        "        return iter([ItemOutcome(f, ItemStatus.DONE) for f in findings])\n"
        "        ctx = current_call()\n        by_subject",
        "delete_erases or second_delete",
        {"test_delete_erases_and_find_again_returns_nothing", "test_second_delete_is_harmless"}),
    "first_page_only": (
        'page = body["next"]', "page = None", "large",
        {"test_a_large_population_is_found_exported_and_erased_whole"}),
    "export_of_a_neighbour": (
        "record = self._get(f.ref)", "record = self._get(str(int(f.ref) + 1))", "export",
        {"test_export_returns_exactly_each_subjects_data",
         "test_a_large_population_is_found_exported_and_erased_whole"}),
    "no_op_restrict": (
        'body = self._request("POST", f"/records/{urllib.parse.quote(f.ref)}/restrict")',
        'body = {"changed": True}', "restrict_touches",
        {"test_restrict_touches_only_the_subject[one_item]",
         "test_restrict_touches_only_the_subject[several_items]"}),
    "second_delete_not_idempotent": (
        '"already_done": ItemStatus.ALREADY_DONE,', '"already_done": ItemStatus.DONE,',
        "second_delete", {"test_second_delete_is_harmless"}),
    "secret_in_logs": (
        'log.debug("%s %s", method, path.split("?")[0])',
        'log.debug("%s %s %s", method, path, self.settings.token.get_secret_value())',
        "secrets", {"test_no_identifiers_or_secrets_in_logs"}),
    "pending_never_resolved": (
        'if job["status"] == "done":', "if False:", "deferred",
        {"test_a_deferred_job_ends_when_polled"}),
}


def _scaffold_with(root: Path, name: str, old: str, new: str) -> Path:
    for rel, text in connector_files(name).items():
        if rel.endswith("/connector.py"):
            assert text.count(old) == 1, f"the mutant's line is not in connector.py: {old}"
            text = text.replace(old, new)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("bug", sorted(MUTANTS))
def test_the_contract_suite_catches_each_bug_in_the_scaffold(
    pytester: pytest.Pytester, bug: str
) -> None:
    old, new, select, failing = MUTANTS[bug]
    dist = _scaffold_with(pytester.path / "dist", f"mut_{bug}", old, new)
    pytester.syspathinsert(dist / "src")
    result = pytester.inline_run(str(dist / "tests"), *FAST, "-k", select)
    passed, skipped, failed = result.listoutcomes()
    assert not skipped
    assert {r.nodeid.rsplit("::", 1)[1] for r in failed} == failing


@LONG
def test_the_scaffold_installs_with_pip(scaffold: Path, tmp_path: Path) -> None:
    assert " acme-crm " in pip_install_and_list(scaffold, tmp_path)
