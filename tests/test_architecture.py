"""The dependency graph flows one way (docs/architecture.md): every import of a hyperswitch package, at module
level or inside a function, goes to a package below the importer in LAYERS."""

from __future__ import annotations

import ast
from pathlib import Path

from tests._helpers import ROOT

# Top to bottom; packages on one line are side by side and may not import each other.
LAYERS = [
    {"__main__"},
    {"cli", "dashboards"},
    {"export", "figures"},
    {"search"},
    {"train"},
    {"switching"},
    {"workloads"},
    {"optim", "results", "_ray"},
    {"config"},
    {"errors", "__version__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def unit_of(path: Path) -> str:
    """The package (or top-level module) a file belongs to: hyperswitch/search/runner.py -> search."""
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "dashboards":
        return "dashboards"
    inner = rel.parts[1:]
    return inner[0] if len(inner) > 1 else inner[0].removesuffix(".py")


def imported_units(tree: ast.AST) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "hyperswitch":
                names = [f"hyperswitch.{a.name}" for a in node.names]
            elif node.module.startswith("hyperswitch."):
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("hyperswitch.")]
        found |= {(n.split(".")[1], node.lineno) for n in names}
    return found


def edges() -> list[tuple[str, str, str, int]]:
    files = sorted((ROOT / "hyperswitch").rglob("*.py")) + sorted((ROOT / "dashboards").rglob("*.py"))
    out = []
    for f in files:
        src = unit_of(f)
        if src == "__init__":  # the package's own public API re-exports from below
            continue
        for dst, line in imported_units(ast.parse(f.read_text(encoding="utf-8"))):
            if dst != src:
                out.append((src, dst, str(f.relative_to(ROOT)), line))
    return out


def test_every_unit_has_a_layer():
    units = {unit_of(f) for f in (ROOT / "hyperswitch").rglob("*.py")} - {"__init__"}
    assert units <= set(RANK), f"place these in LAYERS and docs/architecture.md: {sorted(units - set(RANK))}"


def test_imports_flow_downwards_only():
    wrong = [f"{where}:{line}: {src} imports {dst}" for src, dst, where, line in edges()
             if dst in RANK and RANK[dst] <= RANK[src]]
    assert not wrong, "imports against the flow of docs/architecture.md:\n" + "\n".join(wrong)


def test_the_check_sees_an_upward_import():
    tree = ast.parse("def f():\n    from hyperswitch.search.runner import run_sweep\n")
    assert ("search", 2) in imported_units(tree) and RANK["search"] < RANK["train"]
