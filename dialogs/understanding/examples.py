"""The training examples and the held-out evaluation set, loaded with their lines.

Examples are written by people who are not programmers, one YAML file per intent
(`content/understanding/examples/<intent>.yaml`). A problem is only useful if it
says where to look, so every example keeps its file and line, taken from the YAML
node marks rather than searched for afterwards (the same text can sit on two lines).

Scalars are read as written, never resolved: YAML would turn a bare `no`, `yes`
or `off` into a boolean, and those are exactly the short replies people type.

Two kinds of trouble are kept apart. A file that cannot be read as the format
(broken YAML, a missing key, an example that is a mapping) raises `ExamplesError`
at once, since nothing sensible can be trained from it. Content that reads fine
but would train a worse or unsafe model (unknown intent, too few examples, the
same sentence under two intents) is returned by `check_examples` as a list, so an
author sees every problem in one run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from dialogs.understanding.base import INTENTS, SAFETY_INTENTS

__all__ = [
    "MAX_EXAMPLE_CHARS",
    "MIN_OTHER_EXAMPLES",
    "MIN_SAFETY_EXAMPLES",
    "Example",
    "ExampleProblem",
    "ExampleSet",
    "ExamplesError",
    "IntentFile",
    "check_evaluation",
    "check_examples",
    "load_evaluation",
    "load_examples",
    "normalised_key",
]

# Safety intents need many more phrasings: a missed crisis costs far more than a
# missed greeting, and people describe crisis and fear in very varied words.
MIN_SAFETY_EXAMPLES = 150
MIN_OTHER_EXAMPLES = 40
# Chat messages longer than this are rare, and a long example drowns the
# short phrasings the classifier has to learn from.
MAX_EXAMPLE_CHARS = 400

_NULL_TAG = "tag:yaml.org,2002:null"


class ExamplesError(ValueError):
    """A file could not be read as the examples format; the message names file and line."""

    def __init__(self, file: Path, line: int | None, problem: str) -> None:
        where = f"{file}, line {line}" if line is not None else str(file)
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.line = line
        self.problem = problem


class Example(BaseModel):
    """One labelled message and where it was written (a training example or an evaluation one)."""

    model_config = ConfigDict(frozen=True)

    text: str
    intent: str
    file: Path
    line: int


class IntentFile(BaseModel):
    """One examples file: the intent it declares, on which line, and its examples."""

    model_config = ConfigDict(frozen=True)

    path: Path
    intent: str
    intent_line: int
    examples: tuple[Example, ...]


class ExampleSet(BaseModel):
    """Every examples file of a folder, in file-name order so training is repeatable."""

    model_config = ConfigDict(frozen=True)

    directory: Path
    files: tuple[IntentFile, ...]

    @property
    def examples(self) -> tuple[Example, ...]:
        return tuple(example for file in self.files for example in file.examples)

    @property
    def intents(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(file.intent for file in self.files))


class ExampleProblem(BaseModel):
    """Something an author should fix; `line` is None when the problem is a missing file."""

    model_config = ConfigDict(frozen=True)

    file: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        return f"{where}: {self.message}"


def normalised_key(text: str) -> str:
    """The form in which two examples count as the same: case and spacing ignored."""
    return " ".join(text.casefold().split())


# -- reading YAML with marks ---------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _compose(path: Path) -> yaml.Node | None:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ExamplesError(path, None, f"cannot be read ({error.strerror})") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad_line = raw[: error.start].count(b"\n") + 1
        raise ExamplesError(path, bad_line, "is not UTF-8 text") from error
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = int(mark.line) + 1 if mark is not None else None
        problem = error.problem or error.context or "is not valid YAML"
        raise ExamplesError(path, line, f"is not valid YAML: {problem}") from error
    except yaml.YAMLError as error:
        raise ExamplesError(path, None, f"is not valid YAML: {error}") from error


def _mapping(
    path: Path, node: yaml.Node | None, keys: Sequence[str], what: str
) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        line = _line(node) if node is not None else None
        wanted = " and ".join(f"`{key}:`" for key in keys)
        raise ExamplesError(path, line, f"{what} should be a mapping with {wanted}")
    found: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
        if key is None or key not in keys:
            allowed = ", ".join(keys)
            raise ExamplesError(
                path, _line(key_node), f"unexpected key {key!r} in {what} (allowed: {allowed})"
            )
        if key in found:
            raise ExamplesError(path, _line(key_node), f"`{key}:` appears twice in {what}")
        found[key] = value_node
    for key in keys:
        if key not in found:
            raise ExamplesError(path, _line(node), f"{what} has no `{key}:`")
    return found


def _text(path: Path, node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        kind = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
        hint = " (quote it if the text contains ': ')" if kind == "a mapping" else ""
        raise ExamplesError(path, _line(node), f"{what} is {kind}, not text{hint}")
    # An empty `- ` item is a null; keep it as "" so check_examples can point at it.
    if node.tag == _NULL_TAG and node.style is None:
        return ""
    return str(node.value)


def _sequence(path: Path, node: yaml.Node, what: str) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        raise ExamplesError(path, _line(node), f"{what} should be a list")
    return list(node.value)


def _read_intent_file(path: Path) -> IntentFile:
    root = _mapping(path, _compose(path), ("intent", "examples"), "the file")
    intent = _text(path, root["intent"], "`intent:`").strip()
    examples = tuple(
        Example(text=_text(path, item, "an example"), intent=intent, file=path, line=_line(item))
        for item in _sequence(path, root["examples"], "`examples:`")
    )
    return IntentFile(
        path=path, intent=intent, intent_line=_line(root["intent"]), examples=examples
    )


def load_examples(directory: Path) -> ExampleSet:
    """Read every `*.yaml` file in `directory`; raise `ExamplesError` on a malformed one."""
    if not directory.is_dir():
        raise ExamplesError(directory, None, "is not a folder of example files")
    paths = sorted(directory.glob("*.yaml"))
    return ExampleSet(directory=directory, files=tuple(_read_intent_file(p) for p in paths))


def load_evaluation(path: Path) -> tuple[Example, ...]:
    """Read the held-out set: `messages:` a list of `{intent: id, text: "..."}`."""
    root = _mapping(path, _compose(path), ("messages",), "the file")
    messages: list[Example] = []
    for item in _sequence(path, root["messages"], "`messages:`"):
        fields = _mapping(path, item, ("intent", "text"), "a message")
        messages.append(
            Example(
                text=_text(path, fields["text"], "`text:`"),
                intent=_text(path, fields["intent"], "`intent:`").strip(),
                file=path,
                line=_line(fields["text"]),
            )
        )
    return tuple(messages)


# -- content checks ------------------------------------------------------------------------


def _text_problems(example: Example) -> list[ExampleProblem]:
    if not example.text.strip():
        return [ExampleProblem(file=example.file, line=example.line, message="example is empty")]
    if len(example.text) > MAX_EXAMPLE_CHARS:
        return [
            ExampleProblem(
                file=example.file,
                line=example.line,
                message=f"example is {len(example.text)} characters; "
                f"keep it to {MAX_EXAMPLE_CHARS}",
            )
        ]
    return []


def _duplicate_problems(examples: Iterable[Example], kind: str) -> list[ExampleProblem]:
    problems: list[ExampleProblem] = []
    first: dict[str, Example] = {}
    for example in examples:
        key = normalised_key(example.text)
        if not key:
            continue
        earlier = first.setdefault(key, example)
        if earlier is example:
            continue
        where = f"{earlier.file.name}:{earlier.line}"
        if earlier.intent == example.intent:
            message = f"repeats the {kind} at {where}"
        else:
            message = (
                f"the same {kind} is labelled '{earlier.intent}' at {where} "
                f"and '{example.intent}' here"
            )
        problems.append(ExampleProblem(file=example.file, line=example.line, message=message))
    return problems


def check_examples(
    examples: ExampleSet,
    *,
    min_safety: int = MIN_SAFETY_EXAMPLES,
    min_other: int = MIN_OTHER_EXAMPLES,
) -> list[ExampleProblem]:
    """Every content problem in the examples, in file order; an empty list means ready to train.

    Pass lower minimums only for small test sets: the defaults are the bar for real content.
    """
    problems: list[ExampleProblem] = []
    counts: dict[str, int] = {}
    for file in examples.files:
        if file.intent not in INTENTS:
            problems.append(
                ExampleProblem(
                    file=file.path,
                    line=file.intent_line,
                    message=f"unknown intent '{file.intent}' (known: {', '.join(INTENTS)})",
                )
            )
        if file.intent != file.path.stem:
            problems.append(
                ExampleProblem(
                    file=file.path,
                    line=file.intent_line,
                    message=f"intent '{file.intent}' does not match the file name "
                    f"'{file.path.name}'; name the file {file.intent}.yaml",
                )
            )
        counts[file.intent] = counts.get(file.intent, 0) + len(file.examples)
        for example in file.examples:
            problems.extend(_text_problems(example))
    reported: set[str] = set()
    for file in examples.files:
        minimum = min_safety if file.intent in SAFETY_INTENTS else min_other
        if file.intent in INTENTS and counts[file.intent] < minimum and file.intent not in reported:
            reported.add(file.intent)
            problems.append(
                ExampleProblem(
                    file=file.path,
                    line=file.intent_line,
                    message=f"'{file.intent}' has {counts[file.intent]} examples; "
                    f"at least {minimum} are needed",
                )
            )
    for intent in INTENTS:
        minimum = min_safety if intent in SAFETY_INTENTS else min_other
        if intent not in counts and minimum > 0:
            problems.append(
                ExampleProblem(
                    file=examples.directory / f"{intent}.yaml",
                    line=None,
                    message=f"no examples for '{intent}'; at least {minimum} are needed",
                )
            )
    problems.extend(_duplicate_problems(examples.examples, "example"))
    return problems


def check_evaluation(
    messages: Sequence[Example], examples: ExampleSet | None = None
) -> list[ExampleProblem]:
    """Problems in the held-out set; with `examples`, also any message the model trains on.

    A held-out message that is also a training example would flatter every figure,
    so leaks are reported like duplicates.
    """
    problems: list[ExampleProblem] = []
    for message in messages:
        if message.intent not in INTENTS:
            problems.append(
                ExampleProblem(
                    file=message.file,
                    line=message.line,
                    message=f"unknown intent '{message.intent}'",
                )
            )
        problems.extend(_text_problems(message))
    problems.extend(_duplicate_problems(messages, "message"))
    if examples is not None:
        trained = {normalised_key(e.text): e for e in examples.examples}
        for message in messages:
            seen = trained.get(normalised_key(message.text))
            if seen is not None:
                problems.append(
                    ExampleProblem(
                        file=message.file,
                        line=message.line,
                        message=f"also a training example ({seen.file.name}:{seen.line}); "
                        "held-out messages must be new to the model",
                    )
                )
    return problems
