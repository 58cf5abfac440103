"""The tooling a developer and CI start from (issue 16, item 9)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

from packaging.version import Version

from tests.conftest import ROOT


def _recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_upgrades_pip_and_setuptools_before_installing() -> None:
    recipe = _recipe("$(STAMP)")
    upgrade = next(i for i, line in enumerate(recipe) if "--upgrade" in line)
    install = next(i for i, line in enumerate(recipe) if "constraints.txt" in line)
    words = recipe[upgrade].split()
    assert "pip" in words and "setuptools" in words
    assert upgrade < install
    # A changed Makefile rebuilds the venv's tools too.
    assert "Makefile" in (ROOT / "Makefile").read_text().split("$(STAMP):")[1].splitlines()[0]


def test_this_venv_has_a_setuptools_without_the_known_cves() -> None:
    # CVE-2024-6345 (remote code execution in package_index) is fixed in 70.0.
    assert Version(version("setuptools")) >= Version("70")


def test_aiolimiter_is_bumped_and_nothing_caps_it_below() -> None:
    pinned = re.search(r"^aiolimiter==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert pinned is not None and Version(pinned[1]) >= Version("1.3")
    assert Version(version("aiolimiter")) >= Version("1.3")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ptb = [d for d in project["dependencies"] if d.startswith("python-telegram-bot")]
    # PTB's rate-limiter extra requires aiolimiter<1.3; the guide asks for it itself.
    assert ptb and "rate-limiter" not in ptb[0]
    assert any(d.startswith("aiolimiter>=1.3") for d in project["dependencies"])


def test_make_test_runs_on_two_processes_with_a_pinned_xdist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [command] = _recipe("test")
    assert command.split()[1:] == ["-n", "$(TEST_WORKERS)", "--dist", "loadgroup"]
    assert re.search(r"^TEST_WORKERS \?= 2$", makefile, re.MULTILINE)
    pinned = re.search(r"^pytest-xdist==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert pinned is not None and version("pytest-xdist") == pinned[1]
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("pytest-xdist") for d in dev["dev"])


def test_the_longest_files_started_first_all_exist() -> None:
    # A renamed file would silently drop out of the list and start last again.
    from tests.conftest import LONGEST_FIRST

    assert [f for f in LONGEST_FIRST if not (ROOT / f).is_file()] == []
