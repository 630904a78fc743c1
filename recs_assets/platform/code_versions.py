"""Code versions of the asset modules, from their source: Dagster shows an asset as stale when the
code that computes it changed since it was materialized.

An asset module's version is a hash of its own source and of every ``recs_assets`` module it
imports, transitively (the core transforms, models and metrics it calls), so a change anywhere on
that path marks the asset changed, and a change elsewhere does not. Read once, when the
definitions load.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

from recs_assets.core.paths import REPO_ROOT

PACKAGE = "recs_assets"


def module_file(module: str) -> Path | None:
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def direct_imports(module: str) -> frozenset[str]:
    """The ``recs_assets`` modules ``module`` imports (at any depth of its file)."""
    path = module_file(module)
    if path is None:
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        found.update(n for n in names if n.startswith(f"{PACKAGE}.") and module_file(n))
    return frozenset(found)


def closure(module: str) -> list[str]:
    """``module`` and every ``recs_assets`` module it reaches through imports, sorted."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(direct_imports(current))
    return sorted(seen)


@cache
def code_version(module: str) -> str:
    """12 hex digits of SHA-256 over the sources of ``closure(module)``."""
    digest = hashlib.sha256()
    for name in closure(module):
        path = module_file(name)
        if path is not None:
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
