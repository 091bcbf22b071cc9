"""The package's layering: data flows one way (cli -> orchestrator -> engine -> systems,
ledger -> the values below them), and no module imports one of a layer above its own.

Read from the source with ast (every import, also inside functions and under
TYPE_CHECKING): an upward import is a cycle waiting to happen and hides who depends on
whom.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "src" / "erasure"

#: lowest first; a module may import its own layer and those below it
LAYERS: list[set[str]] = [
    {"errors", "dates", "files", "runtime", "freetext", "ledger_tables", "leases", "statement",
     "phonetext", "scaffold"},
    {"models", "receipts"},
    {"idspaces", "connector", "config", "retry", "export"},
    {"hookspecs", "plugins", "keys", "state", "ledger"},
    {"shredding", "systems", "heads", "packages", "chain", "callbacks", "zendesk_notes",
     "limits"},
    {"engine"},
    {"orchestrator", "sweep", "tables", "reports", "review_report"},
    {"api", "cli", "cli_admin", "cli_api", "cli_common", "cli_distributed", "cli_review",
     "cli_scaffold", "demo", "distributed", "testing", "__init__"},
]


def _layer(module: str) -> int:
    """The layer of ``erasure.X[.Y]`` (by its first part below ``erasure``)."""
    top = module.split(".")[1] if "." in module else "__init__"
    for n, layer in enumerate(LAYERS):
        if top in layer:
            return n
    raise AssertionError(f"{module}: in no layer of tests/test_layers.py (add it)")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    found.update(f"{target}.{a.name}" for a in node.names)
                    continue
            else:
                target = node.module or ""
            found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {t for t in found if t == "erasure" or t.startswith("erasure.")}


MODULES = _modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module: str) -> None:
    own = _layer(module) if module != "erasure" else len(LAYERS) - 1
    upward = sorted(t for t in _imports(module, MODULES[module])
                    if t != "erasure" and _layer(t) > own)
    assert not upward, f"{module} (layer {own}) imports upward: {upward}"


def test_the_named_rules_hold() -> None:
    """The ones the architecture names: config and state do not import the engine; the
    ledger imports neither the connector contract nor the engine."""
    for module in ("erasure.config", "erasure.state"):
        assert not {t for t in _imports(module, MODULES[module])
                    if t.startswith("erasure.engine")}
    for module, path in MODULES.items():
        if module == "erasure.ledger" or module.startswith("erasure.ledger."):
            bad = {t for t in _imports(module, path)
                   if t.startswith(("erasure.connector", "erasure.engine"))}
            assert not bad, f"{module} imports {bad}"
