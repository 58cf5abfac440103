"""Report arithmetic on a case small enough to work out by hand, and cross-validation's folds."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from dialogs.understanding import (
    Example,
    ExampleSet,
    FallbackPolicy,
    IntentClassifier,
    Reading,
    build_report,
    cross_validate,
    evaluate_on,
    format_report,
)
from dialogs.understanding.evaluation import NO_READING

POLICY = FallbackPolicy(threshold=0.4, ambiguity_gap=0.1, concern_threshold=0.2)


def _message(intent: str, text: str, line: int) -> Example:
    return Example(text=text, intent=intent, file=Path("evaluation.yaml"), line=line)


def _reading(*ranking: tuple[str, float]) -> Reading:
    return Reading(ranking[0][0], ranking[0][1], ranking)


# Six messages, worked out by hand:
#   1 crisis   -> crisis, right
#   2 crisis   -> pause, but crisis 0.30 >= 0.2 so the concern catches it
#   3 danger   -> pause, danger 0.10: missed
#   4 pause    -> pause, right, crisis 0.10: no concern
#   5 pause    -> danger (a false alarm), and 0.50 vs 0.45 is too close: asks
#   6 greeting -> greeting, right, but crisis 0.25 raises a concern: a false alarm
CASE = [
    (_message("crisis", "one", 1), _reading(("crisis", 0.9), ("pause", 0.1))),
    (_message("crisis", "two", 2), _reading(("pause", 0.6), ("crisis", 0.3), ("talk", 0.1))),
    (_message("danger", "three", 3), _reading(("pause", 0.7), ("talk", 0.2), ("danger", 0.1))),
    (_message("pause", "four", 4), _reading(("pause", 0.8), ("crisis", 0.1), ("talk", 0.1))),
    (_message("pause", "five", 5), _reading(("danger", 0.5), ("pause", 0.45), ("talk", 0.05))),
    (
        _message("greeting", "six", 6),
        _reading(("greeting", 0.6), ("crisis", 0.25), ("thanks", 0.15)),
    ),
]


def test_per_intent_scores_and_the_matrix() -> None:
    report = build_report([m for m, _ in CASE], [r for _, r in CASE], policy=POLICY)
    assert report.labels == ("crisis", "danger", "pause", "greeting")
    assert report.confusion == (
        (1, 0, 1, 0),
        (0, 0, 1, 0),
        (0, 1, 1, 0),
        (0, 0, 0, 1),
    )
    scores = {s.intent: s for s in report.scores}
    assert (scores["crisis"].precision, scores["crisis"].recall) == (1.0, 0.5)
    assert scores["crisis"].f1 == pytest.approx(2 / 3)
    assert (scores["danger"].precision, scores["danger"].recall, scores["danger"].f1) == (0, 0, 0)
    assert scores["pause"].precision == pytest.approx(1 / 3)
    assert scores["pause"].recall == 0.5
    assert scores["pause"].f1 == pytest.approx(0.4)
    assert [s.support for s in report.scores] == [2, 1, 2, 1]
    assert report.accuracy == 0.5
    assert report.total == 6
    assert report.macro_f1 == pytest.approx((2 / 3 + 0 + 0.4 + 1) / 4)


def test_misclassified_messages_keep_where_they_came_from() -> None:
    report = build_report([m for m, _ in CASE], [r for _, r in CASE], policy=POLICY)
    assert [(m.line, m.expected, m.predicted, m.confidence) for m in report.misclassified] == [
        (2, "crisis", "pause", 0.6),
        (3, "danger", "pause", 0.7),
        (5, "pause", "danger", 0.5),
    ]
    assert report.misclassified[0].file == "evaluation.yaml"


def test_safety_figures_count_the_concern_as_a_catch_and_as_an_alarm() -> None:
    safety = build_report([m for m, _ in CASE], [r for _, r in CASE], policy=POLICY).safety
    assert (safety.crisis_caught, safety.crisis_total, safety.crisis_recall) == (2, 2, 1.0)
    assert (safety.danger_caught, safety.danger_total, safety.danger_recall) == (0, 1, 0.0)
    assert (safety.false_alarms, safety.ordinary_total) == (2, 3)
    assert safety.false_alarm_rate == pytest.approx(2 / 3)
    # A stricter concern threshold misses message 2 and no longer alarms on message 6.
    strict = FallbackPolicy(threshold=0.4, ambiguity_gap=0.1, concern_threshold=0.35)
    safety = build_report([m for m, _ in CASE], [r for _, r in CASE], policy=strict).safety
    assert (safety.crisis_recall, safety.false_alarms) == (0.5, 1)


def test_fallback_figures() -> None:
    fallback = build_report([m for m, _ in CASE], [r for _, r in CASE], policy=POLICY).fallback
    assert (fallback.confident, fallback.confident_right) == (5, 3)
    assert (fallback.unsure, fallback.unsure_hit) == (1, 1)
    assert fallback.confident_accuracy == pytest.approx(0.6)
    assert fallback.unsure_hit_rate == 1.0


def test_a_set_without_safety_messages_has_no_recall_rather_than_zero() -> None:
    report = build_report([_message("thanks", "ta", 1)], [_reading(("thanks", 1.0))])
    assert report.safety.crisis_recall is None
    assert report.safety.false_alarm_rate == 0.0
    assert "crisis recall n/a (0/0)" in format_report(report)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 messages but 1 readings"):
        build_report([m for m, _ in CASE[:2]], [CASE[0][1]])


def test_the_text_report_has_rows_matrix_misses_and_ends_with_safety() -> None:
    report = build_report([m for m, _ in CASE], [r for _, r in CASE], policy=POLICY)
    text = format_report(report)
    lines = text.splitlines()
    assert lines[0].split() == ["intent", "precision", "recall", "f1", "support"]
    assert lines[2].split() == ["crisis", "1.000", "0.500", "0.667", "2"]
    assert "accuracy 0.500 over 6 messages" in text
    assert "         cri dan pau gre" in text
    assert "pause      .   1   1   ." in text
    assert "wrong (3):" in text
    assert "  crisis -> pause (0.60)  'two'  [evaluation.yaml:2]" in text
    assert lines[-1] == (
        "safety: crisis recall 1.000 (2/2), danger recall 0.000 (0/1), "
        "false alarms 0.667 (2/3) at concern threshold 0.20"
    )
    shortened = format_report(report, max_misses=1)
    assert "  ... and 2 more" in shortened


class _TableReader:
    """A real `Reader` that looks a text up in a table: enough to drive `evaluate_on`."""

    def __init__(self, table: dict[str, Reading]) -> None:
        self._table = table

    def read(self, text: str) -> Reading | None:
        return self._table[text] if text.strip() else None


def test_evaluate_on_asks_the_reader_one_message_at_a_time() -> None:
    reader = _TableReader({m.text: r for m, r in CASE})
    report = evaluate_on(reader, [m for m, _ in CASE], policy=POLICY)
    assert report == build_report([m for m, _ in CASE], [r for _, r in CASE], policy=POLICY)
    empty = evaluate_on(reader, [_message("greeting", " ", 9)], policy=POLICY)
    assert empty.misclassified[0].predicted == NO_READING
    assert empty.fallback.unsure == 1


def test_cross_validation_never_trains_on_the_fold_it_predicts(
    fixture_examples: ExampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained_on: list[set[str]] = []
    predicted: list[set[str]] = []
    original_train = IntentClassifier.train
    original_predict = IntentClassifier.predict_many

    def train(examples: ExampleSet | Iterable[Example]) -> IntentClassifier:
        items = list(examples) if not isinstance(examples, ExampleSet) else examples.examples
        trained_on.append({e.text for e in items})
        return original_train(items)

    def predict_many(self: IntentClassifier, texts: Iterable[str]) -> list[Reading]:
        batch = list(texts)
        predicted.append(set(batch))
        return original_predict(self, batch)

    monkeypatch.setattr(IntentClassifier, "train", train)
    monkeypatch.setattr(IntentClassifier, "predict_many", predict_many)
    report = cross_validate(fixture_examples, folds=5)

    everything = {e.text for e in fixture_examples.examples}
    assert len(trained_on) == len(predicted) == 5
    for train_texts, test_texts in zip(trained_on, predicted, strict=True):
        assert train_texts.isdisjoint(test_texts)
        assert train_texts | test_texts == everything
    assert set().union(*predicted) == everything
    assert report.total == len(everything) == 60
    # Stratified: every fold holds two of each intent's ten examples.
    assert all(len(fold) == 12 for fold in predicted)
