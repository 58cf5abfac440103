"""Loading example files with their lines, and every problem `check_examples` reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogs.understanding import (
    ExamplesError,
    ExampleSet,
    check_evaluation,
    check_examples,
    load_evaluation,
    load_examples,
)
from tests.understanding.conftest import FIXTURE_EVALUATION, FIXTURE_EXAMPLES


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _intent_file(intent: str, examples: list[str]) -> str:
    items = "".join(f"  - {e}\n" for e in examples)
    return f"intent: {intent}\nexamples:\n{items}"


def _messages(problems: list[object]) -> list[str]:
    return [str(p) for p in problems]


# -- loading -------------------------------------------------------------------------------


def test_every_example_keeps_its_file_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "greeting.yaml",
        "# a comment first\nintent: greeting\n\nexamples:\n  - hi\n  # skip\n  - 'hello there'\n",
    )
    examples = load_examples(tmp_path)
    [file] = examples.files
    assert (file.path, file.intent, file.intent_line) == (path, "greeting", 2)
    assert [(e.text, e.intent, e.file, e.line) for e in file.examples] == [
        ("hi", "greeting", path, 5),
        ("hello there", "greeting", path, 7),
    ]


def test_the_same_text_on_two_lines_gets_two_lines(tmp_path: Path) -> None:
    _write(tmp_path, "thanks.yaml", _intent_file("thanks", ["thanks", "cheers", "thanks"]))
    assert [e.line for e in load_examples(tmp_path).examples] == [3, 4, 5]


def test_short_replies_stay_text_not_yaml_booleans(tmp_path: Path) -> None:
    _write(tmp_path, "stop.yaml", _intent_file("stop", ["no", "off", "yes", "~", "3"]))
    texts = [e.text for e in load_examples(tmp_path).examples]
    assert texts == ["no", "off", "yes", "", "3"]


def test_files_load_in_name_order(fixture_examples: ExampleSet) -> None:
    names = [f.path.name for f in fixture_examples.files]
    assert names == sorted(names)
    assert fixture_examples.intents == tuple(Path(n).stem for n in names)
    assert len(fixture_examples.examples) == 60


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("intent: pause\nexamples:\n  - fine\n  - [broken\n", 5, "not valid YAML"),
        ("intent: pause\nexamples:\n  - 'open quote\n", 4, "not valid YAML"),
        ("- just\n- a list\n", 1, "should be a mapping"),
        ("intent: pause\n", 1, "has no `examples:`"),
        ("intent: pause\nexample:\n  - hi\n", 2, "unexpected key 'example'"),
        ("intent: pause\nintent: talk\nexamples: []\n", 2, "appears twice"),
        ("intent: pause\nexamples: hello\n", 2, "should be a list"),
        ("intent: pause\nexamples:\n  - ok\n  - note: this\n", 4, "quote it"),
        ("intent: [pause]\nexamples: []\n", 1, "is a list, not text"),
    ],
)
def test_a_malformed_file_raises_naming_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = _write(tmp_path, "pause.yaml", text)
    with pytest.raises(ExamplesError) as caught:
        load_examples(tmp_path)
    assert caught.value.file == path
    assert caught.value.line == line
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(f"{path}, line {line}: ")


def test_an_empty_file_and_non_utf8_are_errors_too(tmp_path: Path) -> None:
    path = _write(tmp_path, "pause.yaml", "")
    with pytest.raises(ExamplesError, match="should be a mapping") as caught:
        load_examples(tmp_path)
    assert caught.value.file == path
    path.write_bytes(b"intent: pause\nexamples:\n  - caf\xe9\n")
    with pytest.raises(ExamplesError, match="not UTF-8") as caught:
        load_examples(tmp_path)
    assert caught.value.line == 3


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ExamplesError, match="not a folder"):
        load_examples(tmp_path / "nowhere")


def test_evaluation_messages_load_with_intent_and_line() -> None:
    messages = load_evaluation(FIXTURE_EVALUATION)
    assert len(messages) == 6
    first = messages[0]
    assert (first.intent, first.text, first.line) == ("crisis", "i just want to die", 3)
    assert messages[1].line == 5


def test_a_malformed_evaluation_file_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "evaluation.yaml", "messages:\n  - intent: pause\n    txt: hi\n")
    with pytest.raises(ExamplesError, match="unexpected key 'txt'") as caught:
        load_evaluation(path)
    assert caught.value.line == 3


# -- content checks ------------------------------------------------------------------------


def _check(folder: Path, **minimums: int) -> list[str]:
    return _messages(list(check_examples(load_examples(folder), **minimums)))


def test_the_fixture_set_has_no_problems_at_low_minimums() -> None:
    assert check_examples(load_examples(FIXTURE_EXAMPLES), min_safety=0, min_other=0) == []


def test_unknown_intent(tmp_path: Path) -> None:
    path = _write(tmp_path, "weather.yaml", _intent_file("weather", ["rain?"]))
    [problem] = check_examples(load_examples(tmp_path), min_safety=0, min_other=0)
    assert (problem.file, problem.line) == (path, 1)
    assert "unknown intent 'weather'" in problem.message


def test_intent_not_matching_the_file_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "talk.yaml", _intent_file("space", ["i need space"]))
    [problem] = check_examples(load_examples(tmp_path), min_safety=0, min_other=0)
    assert (problem.file, problem.line) == (path, 1)
    assert "does not match the file name" in problem.message


def test_too_few_examples_counts_safety_intents_higher(tmp_path: Path) -> None:
    _write(tmp_path, "crisis.yaml", _intent_file("crisis", [f"crisis {i}" for i in range(149)]))
    _write(tmp_path, "danger.yaml", _intent_file("danger", [f"danger {i}" for i in range(150)]))
    _write(tmp_path, "pause.yaml", _intent_file("pause", [f"pause {i}" for i in range(39)]))
    _write(tmp_path, "talk.yaml", _intent_file("talk", [f"talk {i}" for i in range(40)]))
    problems = check_examples(load_examples(tmp_path))
    too_few = [str(p) for p in problems if "examples; at least" in p.message]
    assert too_few == [
        f"{tmp_path / 'crisis.yaml'}:1: 'crisis' has 149 examples; at least 150 are needed",
        f"{tmp_path / 'pause.yaml'}:1: 'pause' has 39 examples; at least 40 are needed",
    ]
    # Intents with no file at all are reported too, without a line.
    missing = [p for p in problems if p.message.startswith("no examples for")]
    assert {p.file.name for p in missing} == {
        "space.yaml", "role.yaml", "cycle.yaml", "support.yaml", "checkin.yaml", "stop.yaml",
        "greeting.yaml", "thanks.yaml", "bot.yaml", "out_of_scope.yaml",
    }  # fmt: skip
    assert all(p.line is None for p in missing)


def test_the_same_example_in_two_intents(tmp_path: Path) -> None:
    _write(tmp_path, "space.yaml", _intent_file("space", ["I need some space", "back later"]))
    talk = _write(
        tmp_path, "talk.yaml", _intent_file("talk", ["can we talk", "i  NEED some Space"])
    )
    [problem] = check_examples(load_examples(tmp_path), min_safety=0, min_other=0)
    assert (problem.file, problem.line) == (talk, 4)
    assert problem.message == (
        "the same example is labelled 'space' at space.yaml:3 and 'talk' here"
    )


def test_the_same_example_twice_in_one_intent(tmp_path: Path) -> None:
    path = _write(tmp_path, "thanks.yaml", _intent_file("thanks", ["Thanks!", "ta", "thanks!"]))
    [problem] = check_examples(load_examples(tmp_path), min_safety=0, min_other=0)
    assert (problem.file, problem.line, problem.message) == (
        path,
        5,
        "repeats the example at thanks.yaml:3",
    )


def test_empty_and_overlong_examples(tmp_path: Path) -> None:
    long = "a" * 401
    path = _write(
        tmp_path, "bot.yaml", _intent_file("bot", ["are you a bot", "", "'   '", long, "a" * 400])
    )
    problems = check_examples(load_examples(tmp_path), min_safety=0, min_other=0)
    assert [(p.file, p.line, p.message) for p in problems] == [
        (path, 4, "example is empty"),
        (path, 5, "example is empty"),
        (path, 6, "example is 401 characters; keep it to 400"),
    ]


def test_evaluation_checks_report_unknown_intents_repeats_and_leaks(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "evaluation.yaml",
        "messages:\n"
        "  - {intent: greeting, text: hi}\n"
        "  - {intent: weather, text: 'sunny?'}\n"
        "  - {intent: thanks, text: 'Thank  you'}\n"
        "  - {intent: thanks, text: much obliged}\n"
        "  - {intent: thanks, text: MUCH obliged}\n",
    )
    problems = check_evaluation(load_evaluation(path), load_examples(FIXTURE_EXAMPLES))
    assert sorted((p.line, p.message) for p in problems) == [
        (
            2,
            "also a training example (greeting.yaml:3); held-out messages must be new to the model",
        ),
        (3, "unknown intent 'weather'"),
        (4, "also a training example (thanks.yaml:4); held-out messages must be new to the model"),
        (6, "repeats the message at evaluation.yaml:5"),
    ]
