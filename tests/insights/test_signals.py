"""Every journal step the insights read still exists, with the kind they expect: a
renamed step would otherwise empty the chart without a word."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dialogs.content import Content, check_content
from dialogs.flows.model import ChoiceStep, ScaleStep
from dialogs.insights.signals import (
    HELPED,
    NOT_HELPED,
    READ_STEPS,
    SPACE_AT,
    SPACE_DELAYS,
    SPACE_REMIND,
    SPACE_REMIND_YES,
    SPACE_WHEN,
    signal_problems,
)
from tests.conftest import CONTENT_DIR

STEP_KINDS = {"rating": ScaleStep, "choice": ChoiceStep}


@pytest.mark.parametrize(("where", "kind"), sorted(READ_STEPS.items()))
def test_each_step_read_exists_with_its_kind(
    content: Content, where: tuple[str, str], kind: str
) -> None:
    flow_id, step_id = where
    assert flow_id in content.flows, f"insights read {flow_id}/{step_id}: no such flow"
    step = content.flows[flow_id].step(step_id)
    assert isinstance(step, STEP_KINDS[kind]), f"{flow_id}/{step_id} is not a {kind} step"
    assert content.flows[flow_id].journal, f"{flow_id} keeps no journal"


def options(content: Content, where: tuple[str, str]) -> set[str]:
    step = content.flows[where[0]].step(where[1])
    assert isinstance(step, ChoiceStep)
    return {o.id for o in step.options}


def test_option_ids_read_are_the_flows_own(content: Content) -> None:
    assert options(content, HELPED) >= NOT_HELPED
    assert SPACE_REMIND_YES in options(content, SPACE_REMIND)
    # Every return time with a reminder is one the insights can place.
    # ("own", a time typed in words, gets no reminder; "stay" is no time at all: it
    # leads back to the same question.)
    placed = {*SPACE_DELAYS, *SPACE_AT}
    assert options(content, SPACE_WHEN) - {"own", "stay"} == placed


def test_each_clock_time_is_when_the_space_flow_reminds(content: Content) -> None:
    steps = {"evening": "remind_eve", "morning": "remind_morning"}
    assert set(steps) == set(SPACE_AT)
    for when, step_id in steps.items():
        step = content.flows["space"].step(step_id)
        assert getattr(step, "at", None) == SPACE_AT[when]


def _edited(tmp_path: Path, flow: str, old: str, new: str) -> Path:
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target)
    path = target / "flows" / f"{flow}.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return target


def test_the_real_content_has_every_step_the_insights_read(content: Content) -> None:
    assert signal_problems(content.flows) == []


def test_renaming_a_step_read_fails_the_content_check_with_its_line(tmp_path: Path) -> None:
    directory = _edited(tmp_path, "pause", "  - id: rate\n", "  - id: rated\n")
    text = (directory / "flows" / "pause.yaml").read_text().replace("next: rate\n", "next: rated\n")
    (directory / "flows" / "pause.yaml").write_text(text)
    content, errors = check_content(directory)
    assert content is None
    [error] = errors
    assert error.file.name == "pause.yaml"
    assert "insights read this step, and it is gone" in str(error)
    assert "[pause/rate]" in str(error)


def test_dropping_an_option_read_fails_the_content_check(tmp_path: Path) -> None:
    directory = _edited(tmp_path, "space", "      - id: in_1h\n", "      - id: in_an_hour\n")
    content, errors = check_content(directory)
    assert content is None
    [error] = errors
    assert error.file.name == "space.yaml" and "['in_1h']" in error.message
    lines = (directory / "flows" / "space.yaml").read_text().splitlines()
    assert lines[error.line - 1].strip() == "- id: when"
