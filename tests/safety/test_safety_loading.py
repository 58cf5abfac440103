"""Broken content files fail loudly, naming the file and the line of the fault.

Each fixture marks the line the error must point at with "# <-".
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyContentError, SafetyScreen

_GOOD_RULE = """\
  - id: crisis.ok
    signal: crisis
    patterns: [want to die]
"""


def _write(tmp_path: Path, text: str, name: str) -> tuple[Path, int | None]:
    text = textwrap.dedent(text)
    for placeholder, block in _BLOCKS.items():
        text = text.replace(placeholder + "\n", block)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    marked = [n for n, line in enumerate(text.splitlines(), start=1) if "# <-" in line]
    return path, (marked[0] if marked else None)


def _assert_names_file_and_line(
    error: SafetyContentError, path: Path, line: int | None, *words: str
) -> None:
    message = str(error)
    assert isinstance(error, ValueError)
    assert str(path) in message
    assert error.path == path
    assert error.line == line
    if line is not None:
        assert f"line {line}:" in message
    for word in words:
        assert word in message, message


def test_the_real_files_load(signals_path: Path, resources_path: Path) -> None:
    assert len(SafetyScreen.from_file(signals_path).rule_ids) >= 10
    assert "INTL" in SafetyResources.from_file(resources_path).codes


SIGNAL_CASES = {
    "yaml syntax": (
        """\
        version: 1
        rules:
          - id: a
            signal: crisis
           patterns: [x]  # <-
        """,
        "not valid YAML",
    ),
    "unclosed quote": (
        """\
        version: 1
        rules:
          - id: a
            signal: crisis
            patterns: ["want to die]  # <-
        """,
        "not valid YAML",
    ),
    "wrong signal": (
        """\
        version: 1
        rules:
          - id: a
            signal: crises  # <-
            patterns: [x]
        """,
        "signal",
    ),
    "misspelt field": (
        """\
        version: 1
        rules:
        @GOOD_RULE@
          - id: b
            signal: danger
            pattern: [he hit me]  # <-
        """,
        "pattern",
    ),
    "missing patterns": (
        """\
        version: 1
        rules:
          - id: a  # <-
            signal: crisis
        """,
        "patterns",
    ),
    "empty patterns": (
        """\
        version: 1
        rules:
          - id: a
            signal: crisis
            patterns: []  # <-
        """,
        "patterns",
    ),
    "number as pattern": (
        """\
        version: 1
        rules:
          - id: a
            signal: crisis
            patterns:
              - want to die
              - 988  # <-
        """,
        "string",
    ),
    "bad rule id": (
        """\
        version: 1
        rules:
          - id: Crisis Rule  # <-
            signal: crisis
            patterns: [x]
        """,
        "id",
    ),
    "duplicate rule id": (
        """\
        version: 1
        rules:
        @GOOD_RULE@
          - id: crisis.ok  # <-
            signal: danger
            patterns: [y]
        """,
        "crisis.ok",
    ),
    "duplicate key": (
        """\
        version: 1
        rules:
          - id: a
            signal: crisis
            signal: danger  # <-
            patterns: [x]
        """,
        "duplicate key",
    ),
    "key read as a boolean": (
        """\
        version: 1
        slots:
          true: [x]  # <-
        rules:
          - id: a
            signal: crisis
            patterns: [x]
        """,
        "quotes",
    ),
    "unknown slot": (
        """\
        version: 1
        slots:
          person: [he, she]
        rules:
          - id: a
            signal: danger
            patterns:
              - "{person} hit me"
              - "{persn} hits me"  # <-
        """,
        "persn",
    ),
    "unclosed choice": (
        """\
        version: 1
        rules:
          - id: a
            signal: crisis
            patterns:
              - "(kill|end myself"  # <-
        """,
        "missing ')'",
    ),
    "stray closer": (
        """\
        version: 1
        rules:
          - id: a
            signal: crisis
            patterns:
              - "kill myself]"  # <-
        """,
        "unexpected",
    ),
    "empty choice": (
        """\
        version: 1
        rules:
          - id: a
            signal: crisis
            patterns:
              - "want to (die||go)"  # <-
        """,
        "empty choice",
    ),
    "question mark for optional": (
        """\
        version: 1
        rules:
          - id: a
            signal: crisis
            patterns:
              - "want to (just )? die"  # <-
        """,
        "[word]",
    ),
    "nothing required": (
        """\
        version: 1
        rules:
          - id: a
            signal: crisis
            patterns:
              - "[just] *"  # <-
        """,
        "not optional",
    ),
    "bad slot entry": (
        """\
        version: 1
        slots:
          person:
            - he
            - "my (partner"  # <-
        rules:
          - id: a
            signal: danger
            patterns: ["{person} hit me"]
        """,
        "person",
    ),
    "slots in a loop": (
        """\
        version: 1
        slots:
          a: ["{b}"]
          b: ["{a}"]  # <-
        rules:
          - id: a
            signal: danger
            patterns: ["{a} hit me"]
        """,
        "refers back",
    ),
    "wrong version": (
        """\
        version: 2  # <-
        rules: []
        """,
        "version",
    ),
    "not a mapping": (
        """\
        - just a list  # <-
        """,
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(SIGNAL_CASES))
def test_broken_signals_file(tmp_path: Path, case: str) -> None:
    text, word = SIGNAL_CASES[case]
    path, line = _write(tmp_path, text, "signals.yaml")
    with pytest.raises(SafetyContentError) as caught:
        SafetyScreen.from_file(path)
    _assert_names_file_and_line(caught.value, path, line, word)


def test_empty_signals_file(tmp_path: Path) -> None:
    path = tmp_path / "signals.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(SafetyContentError) as caught:
        SafetyScreen.from_file(path)
    _assert_names_file_and_line(caught.value, path, 1, "empty")


def test_signals_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "signals.yaml"
    path.write_bytes(b"version: 1\nrules: [\xff]\n")
    with pytest.raises(SafetyContentError) as caught:
        SafetyScreen.from_file(path)
    _assert_names_file_and_line(caught.value, path, 1, "UTF-8")


_COUNTRY = """\
    name: Somewhere
    emergency: "112"
    crisis_lines:
      - {name: Line, how: call, number: "1"}
    dv_lines:
      - {name: Line, how: call, number: "2"}
"""


def _country(code: str) -> str:
    return f"  {code}:\n" + textwrap.indent(_COUNTRY, "  ")


# Stand-ins for blocks shared by several fixtures, swapped in after dedenting.
_BLOCKS = {"@GOOD_RULE@": _GOOD_RULE, "@INTL@": _country("INTL"), "@GB@": _country("GB")}


RESOURCE_CASES = {
    "no fallback": (
        """\
        version: 1
        countries:  # <-
        @GB@
        """,
        "INTL",
    ),
    "lower-case code": (
        """\
        version: 1
        countries:
        @INTL@
          usa:  # <-
            name: US
        """,
        "countries.usa",
    ),
    "call without number": (
        """\
        version: 1
        countries:
        @INTL@
          US:
            name: the US
            emergency: "911"
            crisis_lines:
              - name: Lifeline  # <-
                how: call
            dv_lines:
              - {name: Hotline, how: call, number: "1"}
        """,
        "needs a number",
    ),
    "web without url": (
        """\
        version: 1
        countries:
        @INTL@
          CA:
            name: Canada
            emergency: "911"
            crisis_lines:
              - {name: Line, how: call, number: "988"}
            dv_lines:
              - {name: Shelters, how: web}  # <-
        """,
        "url",
    ),
    "unknown way to reach": (
        """\
        version: 1
        countries:
        @INTL@
          AU:
            name: Australia
            emergency: "000"
            crisis_lines:
              - name: Lifeline
                how: fax  # <-
                number: "1"
            dv_lines:
              - {name: Line, how: call, number: "2"}
        """,
        "how",
    ),
    "no crisis lines": (
        """\
        version: 1
        countries:
        @INTL@
          IE:
            name: Ireland
            emergency: "112"
            crisis_lines: []  # <-
            dv_lines:
              - {name: Line, how: call, number: "2"}
        """,
        "crisis_lines",
    ),
    "number read as a number": (
        """\
        version: 1
        countries:
        @INTL@
          AU:
            name: Australia
            emergency: 000  # <-
            crisis_lines:
              - {name: Line, how: call, number: "1"}
            dv_lines:
              - {name: Line, how: call, number: "2"}
        """,
        "emergency",
    ),
    "alias already taken": (
        """\
        version: 1
        countries:
        @INTL@
        @GB@
          IE:
            name: Ireland
            aliases: [GB]  # <-
            emergency: "112"
            crisis_lines:
              - {name: Line, how: call, number: "1"}
            dv_lines:
              - {name: Line, how: call, number: "2"}
        """,
        "GB",
    ),
    "bad url": (
        """\
        version: 1
        countries:
        @INTL@
          US:
            name: the US
            emergency: "911"
            crisis_lines:
              - name: Line
                how: web
                url: 988lifeline dot org  # <-
            dv_lines:
              - {name: Line, how: call, number: "2"}
        """,
        "url",
    ),
}


@pytest.mark.parametrize("case", sorted(RESOURCE_CASES))
def test_broken_resources_file(tmp_path: Path, case: str) -> None:
    text, word = RESOURCE_CASES[case]
    path, line = _write(tmp_path, text, "resources.yaml")
    with pytest.raises(SafetyContentError) as caught:
        SafetyResources.from_file(path)
    _assert_names_file_and_line(caught.value, path, line, word)
