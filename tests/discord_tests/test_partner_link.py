"""A partner link across platforms: Alice on Telegram (the real python-telegram-bot
against the fake Bot API), Bob on Discord (discord.py in SimCord), one guide, one
store. Each one's messages reach the other's chat on the other's platform."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import discord
import pytest
import simcord
from pydantic import SecretStr

from bot.telegram.adapter import TelegramAdapter
from dialogs.content import load_content
from tests.conftest import CONTENT_DIR, onboard
from tests.discord_tests.conftest import SIMULATED, World, labels, texts, with_buttons
from tests.telegram.conftest import FAST_RETRY, Harness, address
from tests.telegram.fake_bot_api import DEFAULT_TOKEN, FakeBotAPI

pytestmark = SIMULATED
_CONTENT = load_content(CONTENT_DIR)
assert _CONTENT.link_copy is not None
LCOPY = _CONTENT.link_copy
ALICE = 1001


def dms(who: simcord.MemberActor) -> list[discord.Message]:
    channel = who.user.dm_channel
    return [m for m in channel.history() if m.author.bot] if channel else []


@pytest.fixture
async def telegram(world: World) -> AsyncIterator[Harness]:
    fake = FakeBotAPI()
    await fake.start()
    fake.now = lambda: world.clock.now().timestamp()
    settings = world.guide.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(DEFAULT_TOKEN),
            "telegram_api_base_url": fake.base_url,
            "telegram_rate": 1000.0,
            "telegram_rate_per_chat": 1000.0,
        }
    )
    adapter = TelegramAdapter(
        world.guide, settings, clock=world.clock, poll_timeout=1, retry=FAST_RETRY
    )
    await world.guide.add_platform("telegram", adapter)
    await adapter.start()
    await onboard(world.guide.store, world.clock, address(ALICE))
    try:
        yield Harness(fake, world.guide, adapter, world.clock)
    finally:
        await adapter.stop()
        await fake.stop()


async def test_telegram_and_discord_partners_link_and_signal(
    world: World, telegram: Harness
) -> None:
    alice = telegram.person(ALICE)
    await alice.say("/link", until="A link lets you")
    invitation = await alice.press("Make an invitation", until="/link ")
    said = "\n".join(m["text"] for m in invitation)
    # On Telegram the invitation carries the deep link too.
    assert "https://t.me/" in said and "?start=pl_" in said
    code = re.search(r"/link ([A-Z0-9-]{14})", said)
    assert code is not None

    opened = await world.slash(world.bob, "link", what=code.group(1))
    assert "Your partner invited you." in texts(opened)
    linked = await world.click(world.bob, with_buttons(opened), "Agree and link")
    assert LCOPY.linked in texts(linked)
    # Alice hears it on Telegram.
    await telegram.fake.wait_for(
        lambda: any(m.get("text") == LCOPY.linked for m in alice.seen()) or None
    )

    await alice.say("/pause", until="Let's pause for a minute")
    offer = await alice.press("Done", until="Want your partner to get this?")
    assert any('"I\'m taking a pause, not leaving."' in m["text"] for m in offer)
    await alice.press("Send it", until=LCOPY.sent)
    await world.env.settle()
    assert [m.content for m in dms(world.bob)][-1] == (
        'From your partner: "I\'m taking a pause, not leaving."'
    )

    # Bob asks to talk from Discord; Alice answers with one tap on Telegram.
    shown = await world.slash(world.bob, "talk")
    for label in ("That works for me", "Got it", "Tonight"):
        shown = await world.click(world.bob, with_buttons(shown), label)
    shown = await world.click(world.bob, with_buttons(shown), "No thanks")
    offer_message = next(m for m in shown if m.content.startswith("Want your partner"))
    assert labels(offer_message) == ["Send it", "Not now"]
    await world.click(world.bob, offer_message, "Send it")
    request = await alice.replies_after(0, "I'd like to talk when you're ready.")
    assert any(
        m["text"] == "From your partner: \"I'd like to talk when you're ready.\"" for m in request
    )
    await alice.press("Later tonight", until=LCOPY.sent)
    await world.env.settle()
    assert [m.content for m in dms(world.bob)][-1] == 'Your partner answered: "Later tonight"'

    # Bob ends it from Discord; Alice hears only that.
    before = len(alice.seen())
    unlinked = await world.slash(world.bob, "unlink")
    assert LCOPY.unlinked in texts(unlinked)
    ended = await alice.replies_after(before, LCOPY.link_ended)
    assert [m["text"] for m in ended] == [LCOPY.link_ended]
