"""The seam: intent lists, the reading's helpers, and what importing the package costs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dialogs import understanding
from dialogs.understanding import INTENTS, SAFETY_INTENTS, Reading

ROOT = Path(__file__).resolve().parents[2]


def test_safety_intents_are_intents_and_listed_first() -> None:
    assert SAFETY_INTENTS == ("crisis", "danger")
    assert INTENTS[: len(SAFETY_INTENTS)] == SAFETY_INTENTS
    assert len(set(INTENTS)) == len(INTENTS) == 14


def test_probability_looks_through_the_whole_ranking() -> None:
    reading = Reading("pause", 0.6, (("pause", 0.6), ("crisis", 0.3), ("thanks", 0.1)))
    assert reading.probability("crisis") == 0.3
    assert reading.probability("danger") == 0.0


def test_the_seam_loads_no_scikit_learn_until_the_model_is_asked_for() -> None:
    code = (
        "import sys\n"
        "from dialogs.understanding import FallbackPolicy, Reading, load_examples\n"
        "print('sklearn' in sys.modules)\n"
        "from dialogs.understanding import IntentClassifier\n"
        "print('sklearn' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.split() == ["False", "True"]


def test_every_public_name_resolves() -> None:
    for name in understanding.__all__:
        assert getattr(understanding, name) is not None
    with pytest.raises(AttributeError):
        understanding.no_such_name  # noqa: B018
