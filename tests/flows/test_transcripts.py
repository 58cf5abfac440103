"""Static transcripts: the main path reads like the conversation, every option shows up
on some path, and docs/transcripts/ never drifts from the flows."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from dialogs.content import Content, load_content
from dialogs.flows.branching import choose_branch
from dialogs.flows.model import BranchStep, ChoiceStep, EndStep, Flow, MessageStep
from dialogs.flows.transcript import (
    GENERATED_MARK,
    all_paths,
    main_path,
    markdown,
    markdown_all,
    stale_transcripts,
    transcript_docs,
    write_transcripts,
)

ROOT = Path(__file__).resolve().parents[2]
TRANSCRIPTS = ROOT / "docs" / "transcripts"
runner = CliRunner()


@pytest.fixture
def snapshot(tmp_path: Path) -> tuple[dict[str, str], Content]:
    """A private copy of the content, so CLI output can be compared with what the
    test loads even while authors are editing flows."""
    copy = tmp_path / "content"
    shutil.copytree(ROOT / "content", copy)
    return {"PAUSECHECK_CONTENT_DIR": str(copy)}, load_content(copy)


def _flow(data: dict[str, Any]) -> Flow:
    return Flow.model_validate({"id": "fixture", "title": "A fixture", **data})


def _choice(flow: Flow, saves: str) -> ChoiceStep:
    found = [s for s in flow.steps if isinstance(s, ChoiceStep) and s.save_as == saves]
    assert found, f"{flow.id} has no choice saved as {saves!r}"
    return found[0]


def _reframes(flow: Flow) -> dict[str, str]:
    """Option id of the `urge` choice -> the first text of the message its branch picks,
    worked out from the flow itself so the test follows content edits."""
    branch = next(
        s
        for s in flow.steps
        if isinstance(s, BranchStep) and any(c.when.var == "urge" for c in s.cases)
    )
    out = {}
    for option in _choice(flow, "urge").options:
        # Follow branches (the role tunes the note) with the flow's defaults.
        known = {**flow.variables, "urge": option.id}
        step = flow.step(choose_branch(branch, known))
        while isinstance(step, BranchStep):
            step = flow.step(choose_branch(step, known))
        assert isinstance(step, MessageStep)
        out[option.id] = step.text[0]
    return out


def test_main_path_of_pause_reads_like_the_conversation(content: Content) -> None:
    flow = content.flows["pause"]
    text = markdown(main_path(flow, content))
    # With nothing in the journal yet, the opening branch goes to the breathing step.
    first = flow.step("ground")
    assert first is not None
    assert text.startswith(f"# {flow.title} (`pause`)")
    assert f"**Guide:** {first.text[0]}" in text
    assert "Buttons: [Done] · [Skip the breathing]" in text
    assert "**You:** Done" in text
    # The branch on the urge took the first option's way, and only that one.
    reframes = _reframes(flow)
    first_urge = _choice(flow, "urge").options[0].id
    assert f"**Guide:** {reframes[first_urge]}" in text
    for other in set(reframes.values()) - {reframes[first_urge]}:
        assert other not in text
    closing = {s.text[-1] for s in flow.steps if isinstance(s, EndStep) and s.text}
    said = [line for line in text.splitlines() if line.startswith("**Guide:** ")]
    assert said[-1].removeprefix("**Guide:** ") in closing
    # The closing's other wordings follow it as notes, and nothing else does.
    after = text.rstrip().split(said[-1])[-1].strip().splitlines()
    assert after and all(line.startswith("*(or, in wording ") for line in after if line)


def test_all_paths_of_pause_cover_every_urge(content: Content) -> None:
    flow = content.flows["pause"]
    paths = all_paths(flow, content)
    assert 1 < len(paths) <= 200
    assert paths[0] == main_path(flow, content)
    texts = ["\n".join(p.blocks) for p in paths]
    for option, reframe in _reframes(flow).items():
        assert any(reframe in t for t in texts), f"no path shows the reframe for {option!r}"
    labels = {o.label for o in _choice(flow, "urge").options}
    assert {a for p in paths for a in p.answers} >= labels
    doc = markdown_all(paths)
    assert "## Path 1: Done → " in doc
    assert "## Path 2: " in doc


def test_all_paths_are_capped_with_a_note(content: Content) -> None:
    paths = all_paths(content.flows["pause"], content, limit=5)
    assert len(paths) == 5
    assert paths[-1].capped and not any(p.capped for p in paths[:-1])
    assert "*(stopped at 5 paths; more combinations exist)*" in markdown_all(paths)


FIXTURE = {
    "description": "Used by the transcript tests.",
    "variables": {"name": "friend", "resources": "", "then": ""},
    "steps": [
        {
            "id": "pick",
            "kind": "choice",
            "text": "Hi {name}. Pick a colour.",
            "save_as": "colour",
            "options": [
                {"id": "red", "label": "Red", "next": "say", "set": {"mood": "warm"}},
                {"id": "blue", "label": "Blue", "next": "say", "set": {"mood": "cool"}},
            ],
        },
        {
            "id": "say",
            "kind": "message",
            "text": ["You picked {colour}, feeling {mood}.", "Lines: {resources}; then {then}."],
            "pause_between": True,
            "next": "note",
        },
        {"id": "note", "kind": "remember", "set": {"consent": True}, "next": "later"},
        {"id": "later", "kind": "schedule", "flow": "pause", "at": "19:00", "next": "rate"},
        {"id": "rate", "kind": "scale", "text": "How much?", "save_as": "level", "next": "by"},
        {
            "id": "by",
            "kind": "branch",
            "cases": [{"when": {"var": "level", "at_least": 7}, "next": "high"}],
            "otherwise": "low",
        },
        {"id": "high", "kind": "end", "text": "High: {level}."},
        {"id": "low", "kind": "handoff", "flow": "pause"},
    ],
}


def test_a_steps_texts_are_one_message_in_paragraphs_unless_it_pauses(
    content: Content,
) -> None:
    together = copy.deepcopy(FIXTURE)
    del together["steps"][1]["pause_between"]  # type: ignore[index]
    t = main_path(_flow(together), content)
    assert (
        "**Guide:** You picked red, feeling warm.\\\n\\\nLines: *{resources}*; then *{then}*."
        in t.blocks
    )


def test_variables_render_along_the_path_and_engine_ones_are_placeholders(
    content: Content,
) -> None:
    t = main_path(_flow(FIXTURE), content)
    assert t.answers == ("Red", "5")
    assert t.blocks == (
        "**Guide:** Hi friend. Pick a colour.",
        "Buttons: [Red] · [Blue]",
        "**You:** Red",
        "**Guide:** You picked red, feeling warm.",
        "**Guide:** Lines: *{resources}*; then *{then}*.",
        "*(remembers: consent)*",
        "*(a follow-up: `pause` at 19:00)*",
        "**Guide:** How much?",
        "Buttons: [0] · [1] · … · [10]",
        "**You:** *(5 on 0–10)*",
        "*(continues in `pause`)*",
    )


def test_scales_try_both_sides_of_each_threshold(content: Content) -> None:
    paths = all_paths(_flow(FIXTURE), content)
    # Two colours times the middle, 0, 6, 7 and 10.
    assert len(paths) == 10
    texts = ["\n".join(p.blocks) for p in paths]
    assert any("**You:** *(7 on 0–10)*" in t and "**Guide:** High: 7." in t for t in texts)
    assert any("You picked blue, feeling cool." in t for t in texts)
    assert any(t.endswith("*(continues in `pause`)*") for t in texts)


def test_a_loop_is_walked_at_most_twice(content: Content) -> None:
    loop = _flow(
        {
            "steps": [
                {
                    "id": "again",
                    "kind": "choice",
                    "text": "Once more?",
                    "options": [
                        {"id": "yes", "label": "Again", "next": "again"},
                        {"id": "no", "label": "Stop", "next": "bye"},
                    ],
                },
                {"id": "bye", "kind": "end"},
            ]
        }
    )
    t = main_path(loop, content)
    assert t.answers == ("Again", "Again")
    assert t.blocks[-1] == "*(back at `again` a third time: this path stops here)*"
    assert [p.answers for p in all_paths(loop, content)] == [
        ("Again", "Again"),
        ("Again", "Stop"),
        ("Stop",),
    ]


def test_cli_prints_a_transcript(snapshot: tuple[dict[str, str], Content]) -> None:
    env, content = snapshot
    result = runner.invoke(app, ["content", "transcript", "pause"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == markdown(main_path(content.flows["pause"], content))


def test_cli_all_and_out(tmp_path: Path, snapshot: tuple[dict[str, str], Content]) -> None:
    env, content = snapshot
    out = tmp_path / "pause.md"
    result = runner.invoke(
        app, ["content", "transcript", "pause", "--all", "--out", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == markdown_all(all_paths(content.flows["pause"], content))


def test_cli_unknown_flow_is_a_clear_error() -> None:
    result = runner.invoke(app, ["content", "transcript", "no_such_flow"])
    assert result.exit_code == 1
    assert "no flow called 'no_such_flow'" in result.output
    assert "Known flows:" in result.output and "pause" in result.output


def test_write_docs_writes_every_flow_and_removes_only_old_generated_files(
    tmp_path: Path, snapshot: tuple[dict[str, str], Content]
) -> None:
    env, content = snapshot
    docs = tmp_path / "transcripts"
    docs.mkdir()
    (docs / "gone.md").write_text(f"{GENERATED_MARK} from content/flows/gone.yaml -->\n")
    (docs / "README.md").write_text("Written by hand.\n")
    result = runner.invoke(
        app, ["content", "transcript", "--write-docs", "--docs-dir", str(docs)], env=env
    )
    assert result.exit_code == 0, result.output
    assert not (docs / "gone.md").exists()
    assert (docs / "README.md").exists()
    assert stale_transcripts(content, docs) == []
    assert {p.name for p in docs.glob("*.md")} == {*transcript_docs(content), "README.md"}
    # It prints the taps to help, as journeys.md has them.
    assert "| New person, /pause | 0 |" in result.output
    assert "| New person, /pause | 0 |" in (docs / "journeys.md").read_text()


def test_stale_transcripts_are_reported(tmp_path: Path, content: Content) -> None:
    write_transcripts(content, tmp_path)
    (tmp_path / "pause.md").write_text("old\n")
    (tmp_path / "help.md").unlink()
    assert stale_transcripts(content, tmp_path) == ["help.md is missing", "pause.md is out of date"]


def test_docs_transcripts_are_current(content: Content) -> None:
    problems = stale_transcripts(content, TRANSCRIPTS)
    assert problems == [], (
        f"docs/transcripts is stale ({'; '.join(problems)}): run `make transcripts`"
    )
