"""Fixtures for the understanding package: a tiny example set, and one model trained on it.

Training takes a moment even on the tiny set, so the fixture model is trained once
per session; tests that need a model of their own train it from `fixture_examples`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogs.understanding import (
    Example,
    ExampleSet,
    IntentClassifier,
    load_evaluation,
    load_examples,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_EXAMPLES = FIXTURES / "examples"
FIXTURE_EVALUATION = FIXTURES / "evaluation.yaml"


@pytest.fixture(scope="session")
def fixture_examples() -> ExampleSet:
    return load_examples(FIXTURE_EXAMPLES)


@pytest.fixture(scope="session")
def fixture_messages() -> tuple[Example, ...]:
    return load_evaluation(FIXTURE_EVALUATION)


@pytest.fixture(scope="session")
def fixture_classifier(fixture_examples: ExampleSet) -> IntentClassifier:
    return IntentClassifier.train(fixture_examples)
