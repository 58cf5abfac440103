"""Fixtures for the safety screen tests: the real rule and resource files, the phrases."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen

ROOT = Path(__file__).resolve().parents[2]
SIGNALS = ROOT / "content" / "safety" / "signals.yaml"
RESOURCES = ROOT / "content" / "safety" / "resources.yaml"
PHRASES = Path(__file__).resolve().parent / "phrases.yaml"


@pytest.fixture(scope="session")
def signals_path() -> Path:
    return SIGNALS


@pytest.fixture(scope="session")
def resources_path() -> Path:
    return RESOURCES


@pytest.fixture(scope="session")
def screen() -> SafetyScreen:
    return SafetyScreen.from_file(SIGNALS)


@pytest.fixture(scope="session")
def helplines() -> SafetyResources:
    return SafetyResources.from_file(RESOURCES)


@pytest.fixture(scope="session")
def phrases() -> dict[str, list[str]]:
    data = yaml.safe_load(PHRASES.read_text(encoding="utf-8"))
    return {name: [str(p) for p in items] for name, items in data.items()}
