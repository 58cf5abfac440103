"""How good the understanding is, in figures an author can act on.

Two questions, one report shape. `cross_validate` asks how well the examples teach
(each fold is predicted by a model that never saw it); `evaluate_on` asks how well a
trained model does on messages written apart from the examples (the held-out set),
which is the figure to trust, since cross-validation flatters near-duplicates.

Besides the usual per-intent precision, recall and F1, the report carries what the
product is judged on: whether crisis and danger messages are caught (top intent, or
the fallback's safety concern), and how often ordinary messages raise a false alarm.
Everything is computed here from plain counts, so a tiny hand-made case can check it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.model_selection import StratifiedKFold

from dialogs.understanding.base import INTENTS, SAFETY_INTENTS, Reader, Reading
from dialogs.understanding.classifier import IntentClassifier
from dialogs.understanding.examples import Example, ExampleSet
from dialogs.understanding.fallback import Confident, FallbackPolicy

__all__ = [
    "NO_READING",
    "FallbackFigures",
    "IntentScore",
    "Miss",
    "Report",
    "SafetyFigures",
    "build_report",
    "cross_validate",
    "evaluate_on",
    "format_report",
]

# The label for a message the reader returned None for (only empty text should).
NO_READING = "(none)"


@dataclass(frozen=True, slots=True)
class IntentScore:
    intent: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Miss:
    """A message whose top intent was wrong."""

    text: str
    expected: str
    predicted: str
    confidence: float
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class SafetyFigures:
    """Recall is None when the set has no message of that intent."""

    crisis_recall: float | None
    danger_recall: float | None
    false_alarm_rate: float | None
    crisis_caught: int
    crisis_total: int
    danger_caught: int
    danger_total: int
    false_alarms: int
    ordinary_total: int
    concern_threshold: float


@dataclass(frozen=True, slots=True)
class FallbackFigures:
    """What the fallback policy would do with these readings.

    `confident_accuracy`: of the readings acted on, the share that were right.
    `unsure_hit_rate`: of those turned into a question, the share whose right
    intent was among the offered choices.
    """

    confident: int
    confident_right: int
    unsure: int
    unsure_hit: int
    threshold: float
    ambiguity_gap: float

    @property
    def confident_accuracy(self) -> float | None:
        return self.confident_right / self.confident if self.confident else None

    @property
    def unsure_hit_rate(self) -> float | None:
        return self.unsure_hit / self.unsure if self.unsure else None


@dataclass(frozen=True, slots=True)
class Report:
    """`confusion[i][j]`: messages of intent `labels[i]` predicted as `labels[j]`."""

    labels: tuple[str, ...]
    scores: tuple[IntentScore, ...]
    confusion: tuple[tuple[int, ...], ...]
    misclassified: tuple[Miss, ...]
    accuracy: float
    total: int
    safety: SafetyFigures
    fallback: FallbackFigures

    @property
    def macro_f1(self) -> float:
        scored = [s.f1 for s in self.scores if s.support]
        return sum(scored) / len(scored) if scored else 0.0


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _labels(expected: Sequence[str], predicted: Sequence[str]) -> tuple[str, ...]:
    seen = set(expected) | set(predicted)
    known = [intent for intent in INTENTS if intent in seen]
    return (*known, *sorted(seen - set(INTENTS)))


def build_report(
    messages: Sequence[Example],
    readings: Sequence[Reading | None],
    *,
    policy: FallbackPolicy | None = None,
) -> Report:
    """The report for messages and the readings made of them, in the same order."""
    if len(messages) != len(readings):
        raise ValueError(f"{len(messages)} messages but {len(readings)} readings")
    policy = policy or FallbackPolicy()
    expected = [m.intent for m in messages]
    predicted = [r.intent if r is not None else NO_READING for r in readings]
    labels = _labels(expected, predicted)
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for want, got in zip(expected, predicted, strict=True):
        matrix[index[want]][index[got]] += 1

    scores = []
    for i, label in enumerate(labels):
        right = matrix[i][i]
        support = sum(matrix[i])
        claimed = sum(row[i] for row in matrix)
        precision = right / claimed if claimed else 0.0
        recall = right / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(IntentScore(label, precision, recall, f1, support))

    misses = tuple(
        Miss(
            text=m.text,
            expected=m.intent,
            predicted=got,
            confidence=r.confidence if r is not None else 0.0,
            file=m.file.name,
            line=m.line,
        )
        for m, r, got in zip(messages, readings, predicted, strict=True)
        if got != m.intent
    )

    caught = {intent: 0 for intent in SAFETY_INTENTS}
    totals = {intent: 0 for intent in SAFETY_INTENTS}
    false_alarms = ordinary = 0
    confident = confident_right = unsure = unsure_hit = 0
    for message, reading in zip(messages, readings, strict=True):
        concern = policy.safety_concern(reading) if reading is not None else None
        top = reading.intent if reading is not None else NO_READING
        if message.intent in SAFETY_INTENTS:
            totals[message.intent] += 1
            caught[message.intent] += message.intent in (top, concern)
        else:
            ordinary += 1
            false_alarms += top in SAFETY_INTENTS or concern is not None
        if reading is None:
            unsure += 1
            continue
        decision = policy.decide(reading)
        if isinstance(decision, Confident):
            confident += 1
            confident_right += decision.intent == message.intent
        else:
            unsure += 1
            unsure_hit += message.intent in decision.candidates

    total = len(messages)
    right = sum(matrix[i][i] for i in range(len(labels)))
    return Report(
        labels=labels,
        scores=tuple(scores),
        confusion=tuple(tuple(row) for row in matrix),
        misclassified=misses,
        accuracy=right / total if total else 0.0,
        total=total,
        safety=SafetyFigures(
            crisis_recall=_ratio(caught["crisis"], totals["crisis"]),
            danger_recall=_ratio(caught["danger"], totals["danger"]),
            false_alarm_rate=_ratio(false_alarms, ordinary),
            crisis_caught=caught["crisis"],
            crisis_total=totals["crisis"],
            danger_caught=caught["danger"],
            danger_total=totals["danger"],
            false_alarms=false_alarms,
            ordinary_total=ordinary,
            concern_threshold=policy.concern_threshold,
        ),
        fallback=FallbackFigures(
            confident=confident,
            confident_right=confident_right,
            unsure=unsure,
            unsure_hit=unsure_hit,
            threshold=policy.threshold,
            ambiguity_gap=policy.ambiguity_gap,
        ),
    )


def evaluate_on(
    classifier: Reader, messages: Sequence[Example], *, policy: FallbackPolicy | None = None
) -> Report:
    """How `classifier` does on `messages` it was not trained on, one message at a time
    (the way the engine asks)."""
    return build_report(messages, [classifier.read(m.text) for m in messages], policy=policy)


def cross_validate(
    examples: ExampleSet | Sequence[Example],
    folds: int = 5,
    *,
    policy: FallbackPolicy | None = None,
    random_state: int = 0,
) -> Report:
    """Stratified k-fold: every example is predicted by a model trained without its fold."""
    items = examples.examples if isinstance(examples, ExampleSet) else tuple(examples)
    labels = [e.intent for e in items]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    readings: list[Reading | None] = [None] * len(items)
    for train_index, test_index in splitter.split(labels, labels):
        model = IntentClassifier.train(items[i] for i in train_index)
        fold = model.predict_many(items[i].text for i in test_index)
        for i, reading in zip(test_index, fold, strict=True):
            readings[int(i)] = reading
    return build_report(items, readings, policy=policy)


# -- plain-text report ---------------------------------------------------------------------


def _figure(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "n/a"


def _short_names(labels: Sequence[str]) -> list[str]:
    # The shortest prefix length that still tells every column apart.
    for size in range(3, max((len(label) for label in labels), default=3) + 1):
        names = [label[:size] for label in labels]
        if len(set(names)) == len(names):
            return names
    return list(labels)


def format_report(report: Report, *, max_misses: int | None = None) -> str:
    """A readable plain-text report; the last line is the safety figures."""
    name_width = max([len("intent"), *(len(label) for label in report.labels)])
    lines = [
        f"{'intent':<{name_width}}  {'precision':>9}  {'recall':>6}  {'f1':>5}  {'support':>7}",
        "-" * (name_width + 39),
    ]
    lines += [
        f"{s.intent:<{name_width}}  {s.precision:>9.3f}  {s.recall:>6.3f}  {s.f1:>5.3f}"
        f"  {s.support:>7}"
        for s in report.scores
    ]
    fb = report.fallback
    lines += [
        "",
        f"accuracy {report.accuracy:.3f} over {report.total} messages; "
        f"macro F1 {report.macro_f1:.3f}",
        f"fallback (threshold {fb.threshold:.2f}, gap {fb.ambiguity_gap:.2f}): "
        f"acts on {fb.confident}/{report.total}, right {_figure(fb.confident_accuracy)}; "
        f"asks on {fb.unsure}, right intent offered {_figure(fb.unsure_hit_rate)}",
        "",
        "confusion (rows: true intent; columns: predicted, same order)",
    ]
    short = _short_names(report.labels)
    width = max(max(len(s) for s in short), len(str(report.total))) + 1 if short else 1
    lines.append(" " * name_width + "".join(f"{s:>{width}}" for s in short))
    for label, row in zip(report.labels, report.confusion, strict=True):
        cells = "".join(f"{(str(n) if n else '.'):>{width}}" for n in row)
        lines.append(f"{label:<{name_width}}{cells}")
    misses = report.misclassified
    shown = misses if max_misses is None else misses[:max_misses]
    lines += ["", f"wrong ({len(misses)}):"]
    lines += [
        f"  {m.expected} -> {m.predicted} ({m.confidence:.2f})  {m.text!r}  [{m.file}:{m.line}]"
        for m in shown
    ]
    if len(shown) < len(misses):
        lines.append(f"  ... and {len(misses) - len(shown)} more")
    sf = report.safety
    lines += [
        "",
        f"safety: crisis recall {_figure(sf.crisis_recall)} ({sf.crisis_caught}/{sf.crisis_total}),"
        f" danger recall {_figure(sf.danger_recall)} ({sf.danger_caught}/{sf.danger_total}),"
        f" false alarms {_figure(sf.false_alarm_rate)} ({sf.false_alarms}/{sf.ordinary_total})"
        f" at concern threshold {sf.concern_threshold:.2f}",
    ]
    return "\n".join(lines)
