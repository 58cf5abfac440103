"""The safety modules use only the standard library, pydantic, PyYAML and `dialogs`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

DIALOGS = Path(__file__).resolve().parents[2] / "dialogs"
ALLOWED = set(sys.stdlib_module_names) | {"pydantic", "yaml", "dialogs"}


@pytest.mark.parametrize("module", ["safety/normalise", "safety/screen", "safety/resources"])
def test_only_allowed_imports(module: str) -> None:
    tree = ast.parse((DIALOGS / f"{module}.py").read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - ALLOWED == set()
