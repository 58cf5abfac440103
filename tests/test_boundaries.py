"""The layout's rules, proven on the whole tree: who may import whom.

- `dialogs/` (every subpackage) imports no chat library, no `bot`, no `storage`;
- `dialogs/flows/` and `dialogs/safety/` import no learned model (`sklearn`), so the
  phrase tier and content loading work even where the model cannot load;
- `bot/telegram/` never imports `bot/discord/` or discord.py, and the reverse;
- `storage/` imports no `bot` and no chat library;
- matplotlib is imported by `dialogs/insights/drawing.py` alone, inside a function,
  so starting the guide never loads it.

The walk is recursive with dotted module names: a flat glob would silently stop
covering a subpackage the day one is added.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAT_LIBRARIES = ("telegram", "discord")
SERVER_SIDE = ("sqlalchemy", "apscheduler", "aiosqlite", "alembic", "psycopg", "asyncpg")


def _modules(package: str) -> dict[str, Path]:
    """Every module under `package`, by dotted name."""
    base = ROOT / package.replace(".", "/")
    found: dict[str, Path] = {}
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Absolute names imported by one module (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module)
            elif node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
    return names


def _offenders(package: str, forbidden: tuple[str, ...]) -> set[str]:
    bad: set[str] = set()
    for module, path in _modules(package).items():
        for name in _imports(module, path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.add(f"{module}: {name}")
    return bad


def test_the_walk_reaches_subpackages() -> None:
    # Guards the guard: if the walk stopped recursing, every rule below would pass.
    names = set(_modules("dialogs"))
    assert {"dialogs.engine", "dialogs.safety.screen", "dialogs.flows.model"} <= names
    assert {"bot.telegram.adapter", "bot.discord.adapter"} <= set(_modules("bot"))


def test_a_forbidden_import_is_found() -> None:
    # The rule must be able to fail: a real module that imports `dialogs` is caught
    # when `dialogs` is forbidden.
    assert any(o.startswith("bot.app:") for o in _offenders("bot", ("dialogs",)))


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("dialogs", ("bot", "storage", *CHAT_LIBRARIES, *SERVER_SIDE)),
        ("dialogs.flows", ("sklearn", "dialogs.engine", "dialogs.understanding")),
        ("dialogs.safety", ("sklearn", "dialogs.engine", "dialogs.understanding")),
        ("bot.telegram", ("bot.discord", "discord")),
        ("bot.discord", ("bot.telegram", "telegram")),
        ("storage", ("bot", *CHAT_LIBRARIES)),
    ],
)
def test_package_imports_stay_inside_their_rules(package: str, forbidden: tuple[str, ...]) -> None:
    assert _offenders(package, forbidden) == set()


def test_importing_every_dialogs_module_loads_no_platform_library() -> None:
    modules = sorted(_modules("dialogs"))
    forbidden = ("bot", "storage", *CHAT_LIBRARIES, "sqlalchemy", "apscheduler", "aiosqlite")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == ""


DRAWING = "dialogs.insights.drawing"


def test_only_the_drawing_module_imports_matplotlib() -> None:
    offenders = {
        o for package in ("dialogs", "bot", "storage") for o in _offenders(package, ("matplotlib",))
    }
    assert {o.split(":")[0] for o in offenders} == {DRAWING}


def test_the_drawing_module_imports_matplotlib_only_inside_functions() -> None:
    path = _modules("dialogs")[DRAWING]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    names = [
        alias.name if isinstance(node, ast.Import) else node.module or ""
        for node in top_level
        for alias in node.names
    ]
    assert not [n for n in names if n.split(".")[0] == "matplotlib"]


def test_starting_the_guide_does_not_load_matplotlib() -> None:
    # What `pausecheck console` and `pausecheck run` import before the first event,
    # and every dialogs module besides.
    started = ["bot.cli", "bot.app", "bot.platforms", "bot.console"]
    adapters = ["bot.telegram.adapter", "bot.discord.adapter"]
    modules = [*started, *adapters, *sorted(_modules("dialogs"))]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('matplotlib' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "False"


def test_the_command_line_loads_no_scikit_learn_until_a_guide_opens() -> None:
    # scikit-learn (and SciPy under it) takes seconds to import: `pausecheck db check`
    # (a service's ExecStartPre), `keys` and `content` open no guide and need no model.
    code = "import sys\nimport bot.cli\nprint('sklearn' in sys.modules, 'scipy' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.split() == ["False", "False"]
