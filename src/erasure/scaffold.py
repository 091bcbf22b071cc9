"""``erasure new-connector``: write a connector distribution that installs and passes the
contract suite as it is (a connector, its settings, a local fake of the system, the tests,
a README). The files are templates (``scaffold_templates/``, package data)."""

from __future__ import annotations

import keyword
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from string import Template

from .errors import UsageError

__all__ = ["connector_files", "new_connector"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

#: template -> path in the distribution (``{package}`` replaced)
_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "init.py.tmpl": "src/{package}/__init__.py",
    "connector.py.tmpl": "src/{package}/connector.py",
    "fake.py.tmpl": "src/{package}/fake.py",
    "test_contract.py.tmpl": "tests/test_contract.py",
}

#: the lowest erasure-orchestrator a scaffolded connector accepts: the first with the
#: contract suite it is written against (population, deferred jobs, refuse_item, in_call)
MIN_VERSION = "0.1.0"


def _check_name(name: str) -> None:
    if not _NAME.match(name) or keyword.iskeyword(name) or not name.isidentifier():
        raise UsageError(
            f"connector name {name!r} is not valid: lowercase letters, digits and _, "
            "starting with a letter (a Python identifier such as acme_crm)")


def connector_files(name: str) -> dict[str, str]:
    """The distribution's files for connector ``name``, by relative path."""
    _check_name(name)
    package = f"erasure_{name}"
    values = {
        "name": name,
        "connector": name.replace("_", "-"),
        "package": package,
        "dist": f"erasure-{name.replace('_', '-')}",
        "class_name": "".join(p.capitalize() for p in name.split("_")),
        "env_prefix": name.upper(),
        "erasure_version": MIN_VERSION,
    }
    templates = resources.files("erasure") / "scaffold_templates"
    return {path.format(package=package):
            Template((templates / tmpl).read_text(encoding="utf-8")).substitute(values)
            for tmpl, path in _FILES.items()}


def new_connector(name: str, parent: Path) -> Path:
    """Write the distribution of connector ``name`` into ``parent/erasure-NAME``; its path.

    Bad input (a name that is no identifier, a folder that exists or cannot be made) raises
    :class:`UsageError` and writes nothing: the files are made in a temporary folder beside
    the target and moved into place in one rename.
    """
    files = connector_files(name)
    target = parent / f"erasure-{name.replace('_', '-')}"
    if target.exists():
        raise UsageError(f"{target} already exists: choose another name or --dir")
    if not parent.is_dir():
        raise UsageError(f"--dir {parent} is not a folder")
    try:
        staging = Path(tempfile.mkdtemp(prefix=".erasure-new-", dir=parent))
    except OSError as exc:
        raise UsageError(f"cannot write into {parent} ({type(exc).__name__})") from None
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.rename(target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UsageError(f"cannot write {target} ({type(exc).__name__})") from None
    return target
