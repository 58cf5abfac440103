"""Training, predicting, saving and the cache, on the small fixture set."""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from dialogs.understanding import (
    MODEL_VERSION,
    Example,
    ExampleSet,
    IntentClassifier,
    ModelFileError,
    Reading,
    cache_path,
    examples_hash,
    load_or_train,
    normalise_text,
)
from tests.understanding.conftest import FIXTURE_EXAMPLES

ODD_TEXTS = [
    "",
    "   ",
    "zzqx vbnm",
    "😭😭😭",
    "HEEEELP MEEE i'm sooooo scared",
    "I\u2019m scared of him",
    "what's the weather " * 200,
]


def _vector(reading: Reading) -> list[float]:
    return [p for _, p in sorted(reading.ranking)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello   THERE  ", "hello there"),
        ("noooooo pleeeease", "noo pleease"),
        ("I\u2019m fine", "i'm fine"),
        ("kill feel 2000 !!!", "kill feel 2000 !!!"),
        ("\tline\nbreaks\r\n", "line breaks"),
    ],
)
def test_normalise_text(text: str, expected: str) -> None:
    assert normalise_text(text) == expected


def test_predicts_the_fixture_messages(
    fixture_classifier: IntentClassifier, fixture_messages: tuple[Example, ...]
) -> None:
    assert [fixture_classifier.predict(m.text).intent for m in fixture_messages] == [
        m.intent for m in fixture_messages
    ]


def test_a_reading_ranks_every_known_intent_best_first(
    fixture_classifier: IntentClassifier,
) -> None:
    reading = fixture_classifier.predict("hey there!")
    names = [name for name, _ in reading.ranking]
    probabilities = [p for _, p in reading.ranking]
    assert sorted(names) == sorted(fixture_classifier.labels)
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0)
    assert (reading.intent, reading.confidence) == reading.ranking[0]


def test_read_returns_none_only_for_empty_text(fixture_classifier: IntentClassifier) -> None:
    assert fixture_classifier.read("") is None
    assert fixture_classifier.read(" \n\t") is None
    assert fixture_classifier.read("?") is not None


@pytest.mark.parametrize("text", [*ODD_TEXTS, "i want to die", "thank you", "hi"])
def test_the_fast_path_gives_the_pipelines_probabilities(
    fixture_classifier: IntentClassifier, text: str
) -> None:
    [slow] = fixture_classifier.predict_many([text])
    fast = fixture_classifier.predict(text)
    assert np.allclose(_vector(fast), _vector(slow), rtol=0, atol=1e-9)


def test_the_fast_path_handles_two_intents(fixture_examples: ExampleSet) -> None:
    pair = [e for e in fixture_examples.examples if e.intent in {"greeting", "thanks"}]
    classifier = IntentClassifier.train(pair)
    assert classifier.labels == ("greeting", "thanks")
    for text in ["hello", "thanks a lot", "zzz", ""]:
        [slow] = classifier.predict_many([text])
        assert np.allclose(_vector(classifier.predict(text)), _vector(slow), atol=1e-9)


def test_training_is_deterministic(
    fixture_examples: ExampleSet, fixture_classifier: IntentClassifier
) -> None:
    again = IntentClassifier.train(fixture_examples)
    for text in ["i'm scared", "hello", "we keep fighting"]:
        assert again.predict(text) == fixture_classifier.predict(text)


def test_training_needs_two_intents(fixture_examples: ExampleSet) -> None:
    with pytest.raises(ValueError, match="two intents"):
        IntentClassifier.train(fixture_examples.files[0].examples)


# -- saving --------------------------------------------------------------------------------


def test_save_and_load_give_the_same_predictions(
    fixture_classifier: IntentClassifier, fixture_examples: ExampleSet, tmp_path: Path
) -> None:
    path = tmp_path / "nested" / "model.pkl"
    fixture_classifier.save(path)
    loaded = IntentClassifier.load(path)
    assert loaded.labels == fixture_classifier.labels
    for text in [e.text for e in fixture_examples.examples] + ODD_TEXTS:
        assert loaded.predict(text) == fixture_classifier.predict(text)
    assert [p.name for p in path.parent.iterdir()] == ["model.pkl"]  # no temp file left


def test_load_refuses_garbage_other_versions_and_other_examples(
    fixture_classifier: IntentClassifier, tmp_path: Path
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"not a pickle")
    with pytest.raises(ModelFileError, match="cannot be loaded"):
        IntentClassifier.load(path)

    fixture_classifier.save(path, key="abc")
    path.write_bytes(path.read_bytes()[:-200])  # cut short
    with pytest.raises(ModelFileError):
        IntentClassifier.load(path)

    with path.open("wb") as out:
        pickle.dump({"model_version": "old", "sklearn": "0.1", "key": "abc"}, out)
    with pytest.raises(ModelFileError, match="model_version 'old'"):
        IntentClassifier.load(path)

    fixture_classifier.save(path, key="abc")
    assert IntentClassifier.load(path, key="abc").labels == fixture_classifier.labels
    with pytest.raises(ModelFileError, match="other examples"):
        IntentClassifier.load(path, key="xyz")


# -- the cache -----------------------------------------------------------------------------


@pytest.fixture
def examples_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "examples"
    shutil.copytree(FIXTURE_EXAMPLES, folder)
    return folder


@pytest.fixture
def train_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = IntentClassifier.train

    def counting(examples: ExampleSet | Iterable[Example]) -> IntentClassifier:
        calls.append(1)
        return original(examples)

    monkeypatch.setattr(IntentClassifier, "train", counting)
    return calls


def test_a_cache_hit_does_not_retrain(
    examples_dir: Path, tmp_path: Path, train_calls: list[int]
) -> None:
    cache = tmp_path / "cache"
    first = load_or_train(examples_dir, cache)
    path = cache_path(examples_dir, cache)
    assert path.exists() and path.name.startswith("understanding-")
    written = path.stat().st_mtime_ns

    second = load_or_train(examples_dir, cache)
    assert len(train_calls) == 1
    assert path.stat().st_mtime_ns == written
    assert second.predict("hi there") == first.predict("hi there")


def test_a_changed_example_file_retrains_and_drops_the_old_model(
    examples_dir: Path, tmp_path: Path, train_calls: list[int]
) -> None:
    cache = tmp_path / "cache"
    load_or_train(examples_dir, cache)
    old = cache_path(examples_dir, cache)
    greeting = examples_dir / "greeting.yaml"
    greeting.write_text(greeting.read_text() + "  - yo\n")

    load_or_train(examples_dir, cache)
    assert len(train_calls) == 2
    assert list(cache.iterdir()) == [cache_path(examples_dir, cache)] != [old]


def test_a_damaged_cache_is_retrained_and_replaced(
    examples_dir: Path, tmp_path: Path, train_calls: list[int]
) -> None:
    cache = tmp_path / "cache"
    load_or_train(examples_dir, cache)
    path = cache_path(examples_dir, cache)
    path.write_bytes(b"\x80\x05garbage")
    load_or_train(examples_dir, cache)
    assert len(train_calls) == 2
    assert IntentClassifier.load(path).labels  # a whole model again
    load_or_train(examples_dir, cache)
    assert len(train_calls) == 2


def test_the_hash_covers_names_contents_and_the_model_version(
    examples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = examples_hash(examples_dir)
    assert len(before) == 64 and before == examples_hash(examples_dir)
    os.rename(examples_dir / "thanks.yaml", examples_dir / "thanks2.yaml")
    renamed = examples_hash(examples_dir)
    assert renamed != before
    monkeypatch.setattr("dialogs.understanding.classifier.MODEL_VERSION", MODEL_VERSION + "x")
    assert examples_hash(examples_dir) != renamed
