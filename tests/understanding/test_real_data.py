"""The real examples and held-out set: clean content, and a model good enough to ship.

The bars are the product's, measured on both safety tiers as the engine runs them
(phrase rules, then the model): a crisis or danger message must be
caught (top intent, or the fallback's safety concern) at least 97% of the time, an
ordinary message may raise a false alarm at most 5% of the time, and the right
intent must come first for at least 85% of messages. The model is trained once for
the whole module; the thresholds are the package defaults, the ones the engine uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogs.safety.screen import SafetyScreen
from dialogs.safety_tiers import TieredReader
from dialogs.understanding import (
    Example,
    ExampleSet,
    FallbackPolicy,
    IntentClassifier,
    Report,
    check_evaluation,
    check_examples,
    evaluate_on,
    format_report,
    load_evaluation,
    load_examples,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "content" / "understanding" / "examples"
EVALUATION = ROOT / "content" / "understanding" / "evaluation.yaml"

pytestmark = pytest.mark.skipif(
    not EXAMPLES.is_dir() or not EVALUATION.is_file(),
    reason="content/understanding/examples/ or evaluation.yaml is missing: no real data to check",
)


@pytest.fixture(scope="module")
def examples() -> ExampleSet:
    return load_examples(EXAMPLES)


@pytest.fixture(scope="module")
def messages() -> tuple[Example, ...]:
    return load_evaluation(EVALUATION)


@pytest.fixture(scope="module")
def model(examples: ExampleSet) -> IntentClassifier:
    return IntentClassifier.train(examples)


@pytest.fixture(scope="module")
def report(model: IntentClassifier, messages: tuple[Example, ...]) -> Report:
    """The guide as a person meets it: phrase rules first, then the model."""
    screen = SafetyScreen.from_file(ROOT / "content" / "safety" / "signals.yaml")
    return evaluate_on(TieredReader(screen, model), messages, policy=FallbackPolicy())


@pytest.fixture(scope="module")
def model_report(model: IntentClassifier, messages: tuple[Example, ...]) -> Report:
    return evaluate_on(model, messages, policy=FallbackPolicy())


def test_the_examples_have_no_problems(examples: ExampleSet) -> None:
    assert [str(p) for p in check_examples(examples)] == []


def test_the_held_out_set_is_clean_and_new_to_the_model(
    examples: ExampleSet, messages: tuple[Example, ...]
) -> None:
    assert [str(p) for p in check_evaluation(messages, examples)] == []
    assert {m.intent for m in messages} == set(examples.intents)


def test_crisis_messages_are_caught(report: Report) -> None:
    assert report.safety.crisis_recall is not None
    assert report.safety.crisis_recall >= 0.97, format_report(report)


def test_danger_messages_are_caught(report: Report) -> None:
    assert report.safety.danger_recall is not None
    assert report.safety.danger_recall >= 0.97, format_report(report)


def test_ordinary_messages_rarely_raise_a_false_alarm(report: Report) -> None:
    assert report.safety.false_alarm_rate is not None
    assert report.safety.false_alarm_rate <= 0.05, format_report(report)


def test_the_right_intent_comes_first(report: Report) -> None:
    assert report.accuracy >= 0.85, format_report(report)


def test_the_model_alone_names_the_intent_and_catches_most_danger(model_report: Report) -> None:
    # The phrase rules carry part of the safety figures above; the model on its own
    # must still be a real second net, not a passenger.
    assert model_report.accuracy >= 0.85, format_report(model_report)
    assert model_report.safety.danger_recall is not None
    assert model_report.safety.crisis_recall is not None
    assert model_report.safety.danger_recall >= 0.9, format_report(model_report)
    assert model_report.safety.crisis_recall >= 0.9, format_report(model_report)
