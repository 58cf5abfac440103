"""The real examples and held-out set: clean content, and a model good enough to ship.

The bars are the product's, not the model's: a crisis or danger message must be
caught (top intent, or the fallback's safety concern) at least 97% of the time, an
ordinary message may raise a false alarm at most 5% of the time, and the right
intent must come first for at least 85% of messages. The model is trained once for
the whole module; the thresholds are the package defaults, the ones the engine uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
def report(examples: ExampleSet, messages: tuple[Example, ...]) -> Report:
    return evaluate_on(IntentClassifier.train(examples), messages, policy=FallbackPolicy())


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
