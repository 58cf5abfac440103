"""Safety by design: someone who may be unsafe cannot make or accept a link, and a
link with such a person in it pauses, the other side learning only "paused"."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from dialogs.clock import ManualClock
from dialogs.engine import Engine
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, onboard, texts
from tests.link.conftest import ALICE, BOB, here, invite, key, link_up, to

DANGER_WORDS = "I'm scared of how he'll react"


async def _set_unsafe(store: SqlStore, chat: Chat) -> None:
    key = UserKey(chat.address.platform, chat.address.user_id)
    async with store.session() as s:
        await s.save_profile(key, replace(await s.load_profile(key), unsafe=True))


async def test_someone_with_the_danger_flag_cannot_make_a_link(
    alice: Chat, store: SqlStore
) -> None:
    await _set_unsafe(store, alice)
    out = texts(await alice.command("link"))
    assert "leaving out the relationship suggestions" in out  # the `unsafe` flow
    assert "Make an invitation" not in [c.label for c in alice.buttons()]
    async with store.session() as s:
        assert await s.links_of(key(ALICE)) == []


async def test_someone_with_the_danger_flag_cannot_accept_one(
    alice: Chat, bob: Chat, store: SqlStore
) -> None:
    code = await invite(alice)
    await _set_unsafe(store, bob)
    out = texts(await bob.command("link", code))
    assert "leaving out the relationship suggestions" in out
    assert "Agree and link" not in [c.label for c in bob.buttons()]


@pytest.mark.parametrize("answer", ["Yes", "Not sure"])
async def test_any_answer_but_no_on_the_safety_screen_means_no_link(
    alice: Chat, engine: Engine, store: SqlStore, clock: ManualClock, answer: str
) -> None:
    code = await invite(alice)
    dana = Chat(engine, address=BOB, clock=clock)
    await onboard(store, clock, dana.address, screened=False)
    await dana.command("link", code)
    out = texts(await dana.press(answer))
    assert "Your partner invited you." not in out
    assert "Agree and link" not in [c.label for c in dana.buttons()]
    async with store.session() as s:
        assert (await s.load_profile(key(BOB))).unsafe


async def test_an_inviter_flagged_before_the_partner_agrees_links_nothing(
    alice: Chat, bob: Chat, store: SqlStore, lcopy: Any
) -> None:
    code = await invite(alice)
    await bob.command("link", code)
    await _set_unsafe(store, alice)
    out = await bob.press("Agree and link")
    assert here(out) == [lcopy.link_paused] and not to(out, ALICE)


async def test_a_danger_signal_pauses_the_link_and_the_partner_sees_only_paused(
    alice: Chat, bob: Chat, lcopy: Any
) -> None:
    await link_up(alice, bob)
    danger = await bob.say(DANGER_WORDS)
    # Nothing of it reaches Alice, now or later.
    assert not to(danger, ALICE)
    assert texts(await alice.command("link")) == lcopy.status_paused
    # No signal is offered to her while it is paused.
    await alice.command("pause")
    out = await alice.press("Done")
    assert all(not m.text.startswith("Want your partner") for m in out)
