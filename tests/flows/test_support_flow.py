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
    assert "knowing about it often isn't enough" in texts(out)
    assert [c.label for c in chat.buttons()] == ["Tell me more", "Skip"]
    shown = texts(await chat.press("Tell me more"))
    assert "individual sessions for each of you first" in shown
    assert "then couples work" in shown
    shown = texts(await chat.press("Tell me more"))
    # Named in full, so a person can search for it.
    assert "Emotionally Focused Therapy (EFT)" in shown
    assert "somatic (body-based) therapy" in shown
    assert "EMDR" in shown
    # Couples sessions are not where to start when someone is afraid of a partner.
    assert "a domestic-violence service, not joint sessions" in shown
    assert [c.label for c in chat.buttons()] == ["Yes, please", "Not now", "That's me: I'm afraid"]
    out = await chat.press("Yes, please")
    shown = texts(out)
    assert "ask a doctor for a referral" in shown
    assert "licensed or registered" in shown
    assert "experience with couples" in shown
    assert "nothing is guaranteed" in out[-1].text
    async with store.session() as s:
        assert (await s.load_state(USER, clock.now())).flow_id is None


async def test_not_now_skips_the_pointers(chat: Chat) -> None:
    await chat.command("support")
    shown = texts(await chat.press("Skip"))
    assert "domestic-violence service" in shown  # the exception is never skipped
    out = texts(await chat.press("Not now"))
    assert "referral" not in out
    assert "nothing is guaranteed" in out


async def test_the_t_word_only_in_the_names_of_approaches(chat: Chat) -> None:
    """The guide never calls itself or the help therapy; it names the approaches in
    full (issue 17) so a person can search for them."""
    await chat.command("support")
    for label in ("Tell me more", "Tell me more", "Yes, please"):
        await chat.press(label)
    seen = texts(chat.seen)
    assert "Emotionally Focused Therapy (EFT)" in seen
    for name in ("Emotionally Focused Therapy", "somatic (body-based) therapy"):
        seen = seen.replace(name, "")
    assert not re.search(r"therap", seen, re.IGNORECASE)


async def test_someone_flagged_unsafe_gets_the_unsafe_flow_instead(
    chat: Chat, store: SqlStore
) -> None:
    async with store.session() as s:
        await s.save_profile(USER, replace(await s.load_profile(USER), unsafe=True))
    out = texts(await chat.command("support"))
    assert "leaving out the relationship suggestions" in out
    assert "couples counselling" not in out
