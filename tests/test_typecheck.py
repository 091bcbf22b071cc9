"""`make test` type-checks the host and every connector (issue 30, item 6). The mypy run is
`make typecheck`; these tests keep its configuration honest: every package is in it (a
connector added under connectors/ without a change here too), only third-party libraries
without types are let through, and no ignore in our code is a blanket one."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _mypy() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]


def _packages() -> list[Path]:
    """The host's package and each connector's (connectors/NAME/src/PACKAGE)."""
    return [ROOT / "src" / "erasure",
            *sorted(p.parent for p in ROOT.glob("connectors/*/src/*/__init__.py"))]


def test_every_package_is_type_checked_and_ships_py_typed() -> None:
    checked = {p.resolve() for pattern in _mypy()["files"] for p in ROOT.glob(pattern)}
    packages = _packages()
    assert len(packages) >= 6  # the host and the connectors of this repository
    for package in packages:
        assert package in checked or checked & set(package.parents), package
        assert (package / "py.typed").exists(), package


def test_make_test_runs_mypy() -> None:
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    test = re.search(r"^test:(.*)$", make, re.M)
    assert test is not None and "typecheck" in test.group(1).split()
    assert re.search(r"^typecheck:.*\n\t\$\(BIN\)/mypy\s*$", make, re.M)
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(d.startswith("mypy>=") for d in extra["project"]["optional-dependencies"]["test"])


def test_only_untyped_third_party_libraries_are_let_through() -> None:
    ours = {p.name for p in _packages()}
    for override in _mypy().get("overrides", []):
        modules = override["module"]
        modules = modules if isinstance(modules, list) else [modules]
        assert not {m.split(".")[0] for m in modules} & ours, modules
        assert set(override) == {"module", "ignore_missing_imports"}, override


def test_no_blanket_type_ignore_in_our_code() -> None:
    blanket = re.compile(r"#\s*type:\s*ignore(?!\[)")
    found = [f"{path.relative_to(ROOT)}:{n}"
             for package in _packages() for path in package.rglob("*.py")
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if blanket.search(line)]
    assert found == []
