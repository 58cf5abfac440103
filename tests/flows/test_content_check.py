"""The content check: every error kind, found with its file and line, all at once."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dialogs.content import check_content, load_content
from dialogs.flows.errors import ContentInvalid

ROOT = Path(__file__).resolve().parents[2]
REAL_CONTENT = ROOT / "content"
BROKEN = ROOT / "tests" / "fixtures" / "broken_flows"
EXPECT = re.compile(r"^# expect: (\d+): (.+)$")


def _expectations(path: Path) -> list[tuple[int, str]]:
    found = []
    for line in path.read_text().splitlines():
        m = EXPECT.match(line)
        if m:
            found.append((int(m.group(1)), m.group(2)))
    return found


def _content_with(tmp_path: Path, *extra: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(REAL_CONTENT, target)
    for path in extra:
        shutil.copy(path, target / "flows" / path.name)
    return target


def test_real_content_passes() -> None:
    content, errors = check_content(REAL_CONTENT)
    assert errors == []
    assert content is not None
    assert {"start", "help", "pause", "followup", "crisis", "danger"} <= set(content.flows)


@pytest.mark.parametrize("fixture", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_error_kind_is_reported_with_file_and_line(tmp_path: Path, fixture: Path) -> None:
    expected = _expectations(fixture)
    assert expected, f"{fixture.name} declares no '# expect:' lines"
    directory = _content_with(tmp_path, fixture)
    content, errors = check_content(directory)
    assert content is None
    mine = [e for e in errors if e.file.name == fixture.name]
    others = [e for e in errors if e.file.name != fixture.name]
    assert others == [], "a broken flow must not cause errors elsewhere"
    got = [(e.line, e.message) for e in mine]
    for line, text in expected:
        assert any(gl == line and text in gm for gl, gm in got), (
            f"expected line {line}: {text!r}\n got: {got}"
        )
    assert len(mine) == len(expected), f"unexpected extra errors: {got}"


def test_all_errors_from_all_files_are_reported_at_once(tmp_path: Path) -> None:
    fixtures = sorted(BROKEN.glob("*.yaml"))
    directory = _content_with(tmp_path, *fixtures)
    _, errors = check_content(directory)
    expected_total = sum(len(_expectations(f)) for f in fixtures)
    assert len(errors) == expected_total
    assert {e.file.name for e in errors} == {f.name for f in fixtures}


def test_load_content_raises_with_every_error_in_the_message(tmp_path: Path) -> None:
    directory = _content_with(tmp_path, BROKEN / "dangling_next.yaml", BROKEN / "unreachable.yaml")
    with pytest.raises(ContentInvalid) as info:
        load_content(directory)
    text = str(info.value)
    assert "dangling_next.yaml:9:" in text
    assert "unreachable.yaml:9:" in text


def test_missing_content_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    _, errors = check_content(missing)
    assert len(errors) == 1
    assert errors[0].file == missing
    assert "not found" in errors[0].message


def test_missing_copy_key_and_bad_command_are_reported(tmp_path: Path) -> None:
    directory = _content_with(tmp_path)
    copy = directory / "copy.yaml"
    copy.write_text(copy.read_text().replace("stale_button:", "stale_buton:"))
    commands = directory / "commands.yaml"
    commands.write_text(
        commands.read_text() + "  - name: Bad-Name\n    description: x\n    flow: nope\n"
    )
    _, errors = check_content(directory)
    messages = [(e.file.name, e.message) for e in errors]
    assert any(f == "copy.yaml" and "stale_button: Field required" in m for f, m in messages)
    assert any(f == "copy.yaml" and "stale_buton: Extra inputs" in m for f, m in messages)
    assert any(
        f == "commands.yaml" and "name: String should match pattern" in m for f, m in messages
    )
    assert any(
        f == "commands.yaml" and "description: String should have at least 3" in m
        for f, m in messages
    )


def test_command_pointing_at_missing_flow(tmp_path: Path) -> None:
    directory = _content_with(tmp_path)
    commands = directory / "commands.yaml"
    commands.write_text(
        commands.read_text() + "  - name: ghost\n    description: Nothing here\n    flow: ghost\n"
    )
    _, errors = check_content(directory)
    assert [(e.file.name, e.message) for e in errors] == [
        ("commands.yaml", "/ghost names flow 'ghost', which does not exist")
    ]


def test_required_flow_missing(tmp_path: Path) -> None:
    directory = _content_with(tmp_path)
    (directory / "flows" / "crisis.yaml").unlink()
    _, errors = check_content(directory)
    messages = [e.message for e in errors]
    assert "the engine needs a flow called 'crisis'" in messages


def test_yes_and_no_stay_strings(tmp_path: Path) -> None:
    """YAML 1.1 would read `id: yes` as True; authors mean the word."""
    content = load_content(REAL_CONTENT)
    fits = content.flows["pause"].step("fits")
    assert fits is not None
    assert [o.id for o in fits.options] == ["yes", "no"]  # type: ignore[union-attr]


def test_reflection_errors_name_the_file_and_line(tmp_path: Path) -> None:
    content_dir = _content_with(tmp_path)
    broken = content_dir / "reflections" / "broken.yaml"
    broken.write_text(
        "id: broken\n"
        "title: A broken one\n"
        "summary: For the test.\n"
        "intro: Hello.\n"
        "steps:\n"
        "  - id: one\n"
        "    group_text: Step one\n"
        "    prompt: Pick.\n"
        "    kind: choice\n"
        "    options:\n"
        "      - id: only\n"
        "        label: The only option\n"
        "        tally: sideways\n"
        "closing: Bye.\n",
        encoding="utf-8",
    )
    (content_dir / "reflections" / "misnamed.yaml").write_text(
        (content_dir / "reflections" / "noticing.yaml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    content, errors = check_content(content_dir)
    assert content is None
    found = {(e.file.name, e.line, e.message.split(":")[0]) for e in errors}
    # The bad tally, and an id that is not the file name; nothing else.
    assert found == {
        ("broken.yaml", 13, "steps.0.options.0.tally"),
        ("misnamed.yaml", 3, "reflection id 'noticing' must match the file name 'misnamed'"),
    }


def test_a_choice_step_with_one_option_is_reported_at_the_step(tmp_path: Path) -> None:
    content_dir = _content_with(tmp_path)
    path = content_dir / "reflections" / "noticing.yaml"
    text = path.read_text(encoding="utf-8")
    # Keep only the first option of the first step.
    start = text.index("      - id: space")
    end = text.index("  - id: alarm")
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    content, errors = check_content(content_dir)
    assert content is None
    [error] = errors
    first_step_line = text[: text.index("  - id: move")].count("\n") + 1
    assert (error.file.name, error.line) == ("noticing.yaml", first_step_line)
    assert "a choice step needs 2 to 5 options" in error.message
