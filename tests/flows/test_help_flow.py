"""/help: the handful of commands that matter at a hard moment, in a few words, and
every command behind one button."""

from __future__ import annotations

from dialogs.content import Content
from tests.conftest import Chat, texts

HARD_MOMENT = ["pause", "space", "talk", "sos", "stop", "schedule"]


def _commands_named(text: str) -> list[str]:
    return [line.split(":")[0].lstrip("/") for line in text.splitlines() if line.startswith("/")]


async def test_help_shows_the_hard_moment_commands_first_in_few_words(chat: Chat) -> None:
    out = await chat.command("help")
    shown = _commands_named(out[0].text)
    assert shown == HARD_MOMENT
    # A handful of lines of a few words each, not the whole page: with the question
    # under it, within the brevity budget as the person reads it (rendered).
    assert len(out[0].text.split()) <= 35
    assert len(texts(out).split()) <= 60 and len(out) <= 2
    assert "/forget" not in texts(out) and "/export" not in texts(out)
    assert [c.label for c in chat.buttons()] == ["Yes, pause now", "All commands", "Not now"]


async def test_all_commands_opens_the_full_list(chat: Chat, content: Content) -> None:
    await chat.command("help")
    out = await chat.press("All commands")
    assert _commands_named(out[-1].text) == [c.name for c in content.commands.menu()]
    assert "/forget: Delete everything" in out[-1].text


async def test_typed_all_opens_the_full_list_too(chat: Chat) -> None:
    await chat.command("help")
    out = await chat.say("all")
    assert "/privacy" in texts(out)


async def test_help_works_before_any_agreement(newcomer: Chat) -> None:
    out = await newcomer.command("help")
    assert _commands_named(out[0].text) == HARD_MOMENT


def test_the_menus_list_the_hard_moment_commands_first(content: Content) -> None:
    # Telegram shows its menu in this order; Discord sorts slash commands itself.
    menu = [c.name for c in content.commands.menu()]
    assert menu[: len(HARD_MOMENT)] == HARD_MOMENT
    assert [c.name for c in content.commands.hard_moment()] == HARD_MOMENT


def test_a_seventh_brief_is_refused(content: Content) -> None:
    import pytest
    from pydantic import ValidationError

    from dialogs.flows.commands import CommandList

    commands = [c.model_dump() for c in content.commands.commands]
    for c in commands:
        if c["brief"] is None:
            c["brief"] = "one too many"
            break
    with pytest.raises(ValidationError, match="at most 6 commands may have a 'brief'"):
        CommandList.model_validate({"commands": commands})
