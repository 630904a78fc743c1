"""The floors hold: import-linter's contracts pass (and bite), no two subpackages import each other
in a circle, and the service loads no Dagster module."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from recs_assets.core.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "recs_assets"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the contracts of ``root/pyproject.toml`` over ``root/recs_assets``."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def test_import_contracts_are_kept() -> None:
    done = lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_dagster_import_in_the_core_breaks_the_contract(tmp_path: Path) -> None:
    # the same contracts over a copy whose core imports dagster must fail, naming the contract
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(PACKAGE, tmp_path / "recs_assets", ignore=shutil.ignore_patterns("__pycache__"))
    metrics = tmp_path / "recs_assets" / "core" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nimport dagster  # noqa: E402,F401\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "The core does not import Dagster BROKEN" in done.stdout


def imported_modules(path: Path, module: str) -> set[str]:
    """Absolute ``recs_assets`` modules that ``path`` (the module ``module``) imports, at any depth
    of the file (imports inside functions count: they still tie the packages together)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("recs_assets.")}


def package_graph() -> dict[str, set[str]]:
    """Subpackage -> the subpackages it imports, between siblings at every depth (``recs_assets.x``
    and ``recs_assets.y``; ``recs_assets.core.a`` and ``recs_assets.core.b``; ...)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        module = ".".join(p for p in parts if p != "__init__")
        for target in imported_modules(path, module):
            a, b = module.split("."), target.split(".")
            depth = 0
            while depth < min(len(a), len(b)) and a[depth] == b[depth]:
                depth += 1
            if depth < len(a) - 1 and depth < len(b):  # both below a common parent, not the same
                graph[".".join(a[: depth + 1])].add(".".join(b[: depth + 1]))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_subpackages_import_each_other_in_a_circle() -> None:
    graph = package_graph()
    assert "recs_assets.core" in graph["recs_assets.models"]  # the walk sees real imports
    assert cycles(graph) == []


def test_the_service_loads_no_dagster_module() -> None:
    code = (
        "import sys, bento.service\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))\n"
        "print(sorted(m for m in sys.modules if m.startswith('recs_assets.')"
        " and not m.startswith('recs_assets.core')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    dagster_modules, pipeline_modules = done.stdout.strip().splitlines()[-2:]
    assert dagster_modules == "[]"
    assert pipeline_modules == "[]"
