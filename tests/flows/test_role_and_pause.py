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
    assert "leans toward space" in shown
    assert "not who you are" in shown and "/role" in shown
    assert await role_of(store) == "space"


@pytest.mark.parametrize(
    ("label", "role", "line"),
    [
        ("Toward more contact", "contact", "leans toward contact"),
        ("Both, or it switches", "both", "Both, or switching, is common"),
        ("Not sure", "unsure", "notice where your body wants to go"),
    ],
)
async def test_each_role_answer(
    chat: Chat, store: SqlStore, label: str, role: str, line: str
) -> None:
    await chat.command("role")
    await chat.press(label)
    await chat.press("A bit of both")
    out = await chat.press("It depends on the day")
    assert line in texts(out)
    assert await role_of(store) == role


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
