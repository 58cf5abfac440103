"""/support: when professional help fits, what kinds exist, and how to look."""

from __future__ import annotations

import re
from dataclasses import replace

from dialogs.clock import ManualClock
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, texts

USER = UserKey("test", "u1")


async def test_main_path_when_it_fits_what_kinds_and_how_to_look(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    out = await chat.command("support")
    shown = texts(out)
    assert "knowing about it often isn't enough" in shown
    assert "individual sessions for each of you first" in shown
    assert "Then couples counselling" in shown
    assert "Emotionally Focused couples work (EFT)" in shown
    assert "body-based (somatic) approaches" in shown
    assert "EMDR" in shown
    # Couples sessions are not where to start when someone is afraid of a partner.
    assert "joint sessions aren't the place to start" in shown
    assert [c.label for c in chat.buttons()] == ["Yes, please", "Not now", "That's me: I'm afraid"]
    out = await chat.press("Yes, please")
    shown = texts(out)
    assert "GP or doctor" in shown
    assert "licensed or registered" in shown
    assert "experience with couples" in shown
    assert "no approach comes with a guarantee" in out[-1].text
    async with store.session() as s:
        assert (await s.load_state(USER, clock.now())).flow_id is None


async def test_not_now_skips_the_pointers(chat: Chat) -> None:
    await chat.command("support")
    out = texts(await chat.press("Not now"))
    assert "GP" not in out
    assert "/support brings this back" in out


async def test_never_names_itself_or_the_help_with_the_t_word(chat: Chat) -> None:
    await chat.command("support")
    await chat.press("Yes, please")
    assert not re.search(r"therap", texts(chat.seen), re.IGNORECASE)


async def test_someone_flagged_unsafe_gets_the_unsafe_flow_instead(
    chat: Chat, store: SqlStore
) -> None:
    async with store.session() as s:
        await s.save_profile(USER, replace(await s.load_profile(USER), unsafe=True))
    out = texts(await chat.command("support"))
    assert "leaving out the relationship suggestions" in out
    assert "couples counselling" not in out
