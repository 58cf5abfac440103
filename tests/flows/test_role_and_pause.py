"""The role self-check is remembered and changes the pause flow's copy."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, texts

USER = UserKey("test", "u1")
CONTACT_NOTE = "your first move tends to be toward contact"
SPACE_NOTE = "your first move tends to be toward space"


async def role_of(store: SqlStore) -> str | None:
    async with store.session() as s:
        return (await s.load_profile(USER)).role


async def test_role_check_main_path_is_remembered(chat: Chat, store: SqlStore) -> None:
    out = await chat.command("role")
    shown = texts(out)
    assert "habits of the nervous system, not labels" in shown
    assert [c.label for c in out[-1].choices] == [
        "Toward more contact",
        "Toward more space",
        "Both, or it switches",
        "Not sure",
    ]
    await chat.press("Toward more space")
    await chat.press("Relief, or a need for quiet too")
    out = await chat.press("Pressure, I need time first")
    shown = texts(out)
    assert "Your answers lean toward space" in shown
    shown = texts(await chat.press("That's enough for now"))
    assert "not who you are" in shown and "/role" in shown
    assert await role_of(store) == "space"


@pytest.mark.parametrize(
    ("answers", "role", "line"),
    [
        # The first answer no longer decides alone: two of three toward space win.
        (
            (
                "Toward more contact",
                "Relief, or a need for quiet too",
                "Pressure, I need time first",
            ),
            "space",
            "Your answers lean toward space",
        ),
        (
            ("Toward more space", "An urge to reach them", "Relief, let's talk"),
            "contact",
            "Your answers lean toward contact",
        ),
        (
            ("Both, or it switches", "A bit of both", "It depends on the day"),
            "both",
            "Your answers say it switches",
        ),
        # One lean and two "not sure" still counts as a lean.
        (("Not sure", "Not sure", "Pressure, I need time first"), "space", "lean toward space"),
        (("Not sure", "Not sure", "Not sure"), "unsure", "No clear lean this time"),
    ],
)
async def test_all_three_answers_count(
    chat: Chat, store: SqlStore, answers: tuple[str, str, str], role: str, line: str
) -> None:
    await chat.command("role")
    for label in answers[:-1]:
        await chat.press(label)
    out = await chat.press(answers[-1])
    assert line in texts(out)
    assert await role_of(store) == role


@pytest.mark.parametrize(
    "answers",
    [
        ("Toward more contact", "Relief, or a need for quiet too", "It depends on the day"),
        ("Toward more space", "An urge to reach them", "Not sure"),
        ("Both, or it switches", "Relief, or a need for quiet too", "Relief, let's talk"),
    ],
)
async def test_a_tie_says_so_kindly_without_a_label(
    chat: Chat, store: SqlStore, answers: tuple[str, str, str]
) -> None:
    await chat.command("role")
    for label in answers[:-1]:
        await chat.press(label)
    shown = texts(await chat.press(answers[-1]))
    assert "came out even" in shown and "That's common" in shown
    assert "lean toward" not in shown
    for label in ("you are avoidant", "you are anxious", "you're a pursuer", "you're avoidant"):
        assert label not in shown.lower()
    assert await role_of(store) == "both"


async def test_role_never_claims_to_keep_what_it_did_not_learn(chat: Chat) -> None:
    await chat.command("role")
    await chat.press("Not sure")
    await chat.press("Not sure")
    shown = texts(await chat.press("Not sure"))
    shown += texts(await chat.press("That's enough for now"))
    assert "keep this in mind" not in shown.lower() and "i'll remember" not in shown.lower()
    assert "/role asks again" in shown


async def test_both_can_reach_or_both_step_back(chat: Chat) -> None:
    await chat.command("role")
    await chat.press("Toward more contact")
    await chat.press("An urge to reach them")
    await chat.press("Relief, let's talk")
    out = await chat.press("What if we both do the same?")
    shown = texts(out)
    assert "Two who both reach" in shown and "Two who both step back" in shown
    assert "fearful-avoidant" in shown


async def pause_check_copy(chat: Chat, urge: str = "Reach out more") -> str:
    """What pause says about the urge, once the check has been taken as fitting."""
    await chat.command("pause")
    await chat.press("Done")
    await chat.press("6")
    await chat.press("A message")
    await chat.press(urge)
    return texts(await chat.press("It fits"))


async def set_role(store: SqlStore, role: str | None) -> None:
    async with store.session() as s:
        await s.save_profile(USER, replace(await s.load_profile(USER), role=role))


async def test_pause_speaks_to_a_contact_habit(chat: Chat, store: SqlStore) -> None:
    await set_role(store, "contact")
    shown = await pause_check_copy(chat)
    assert CONTACT_NOTE in shown and SPACE_NOTE not in shown


async def test_pause_speaks_to_a_space_habit(chat: Chat, store: SqlStore) -> None:
    await set_role(store, "space")
    shown = await pause_check_copy(chat, "Pull away")
    assert SPACE_NOTE in shown and CONTACT_NOTE not in shown


async def test_the_habit_note_comes_only_when_the_urge_is_the_habit(
    chat: Chat, store: SqlStore
) -> None:
    await set_role(store, "space")
    shown = await pause_check_copy(chat, "Reach out more")
    assert SPACE_NOTE not in shown and "safety through closeness" in shown


async def test_pause_without_a_role_has_neither_note(chat: Chat, store: SqlStore) -> None:
    shown = await pause_check_copy(chat)
    assert CONTACT_NOTE not in shown and SPACE_NOTE not in shown
    assert "safety through closeness" in shown


async def test_role_taken_in_the_guide_reaches_pause(chat: Chat) -> None:
    await chat.command("role")
    await chat.press("Toward more contact")
    await chat.press("An urge to reach them")
    await chat.press("Relief, let's talk")
    assert CONTACT_NOTE in await pause_check_copy(chat)


async def test_role_check_is_held_back_while_unsafe(chat: Chat, store: SqlStore) -> None:
    async with store.session() as s:
        await s.save_profile(USER, replace(await s.load_profile(USER), unsafe=True))
    out = await chat.command("role")
    assert "leaving out the relationship suggestions" in texts(out)
    assert "first move" not in texts(out)
