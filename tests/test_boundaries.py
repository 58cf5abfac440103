"""`dialogs/` stays platform-free: nothing from `bot/`, the chat libraries or storage."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

DIALOGS = Path(__file__).resolve().parent.parent / "dialogs"
FORBIDDEN = ("bot", "storage", "telegram", "discord", "sqlalchemy", "apscheduler", "aiosqlite")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_dialogs_module_imports_a_platform_or_the_bot() -> None:
    files = sorted(DIALOGS.glob("*.py"))
    assert len(files) > 10, "the dialogs package seems to be missing"
    offenders = {
        f"{path.name}: {name}"
        for path in files
        for name in _imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert offenders == set()


def test_importing_every_dialogs_module_loads_no_platform_library() -> None:
    modules = [f"dialogs.{p.stem}" for p in DIALOGS.glob("*.py") if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
