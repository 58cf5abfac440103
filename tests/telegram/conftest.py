"""The real guide (engine, content, in-memory SQLite, outbox) and the real PTB
Application, polling a fake Bot API on 127.0.0.1.

`Person` plays one Telegram user: it queues updates in the fake and waits (bounded)
until the bot's answer shows up in the chat, as the person would see it.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.app import Guide, open_guide
from bot.config import Settings
from bot.telegram.adapter import TelegramAdapter
from bot.telegram.retry import RetryPolicy
from dialogs.clock import ManualClock
from dialogs.events import Address
from dialogs.store import ConversationState, Profile, UserKey
from tests.conftest import MEMORY_URL, onboard
from tests.telegram.fake_bot_api import DEFAULT_TOKEN, FakeBotAPI

# Quick retries, so fault tests take fractions of a second.
FAST_RETRY = RetryPolicy(first_backoff=0.02, max_backoff=0.1, flood_budget=10.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Harness:
    fake: FakeBotAPI
    guide: Guide
    adapter: TelegramAdapter
    clock: ManualClock

    async def onboard(self, user_id: int, **changes: object) -> None:
        await onboard(self.guide.store, self.clock, address(user_id), **changes)

    def person(self, user_id: int, chat_id: int | None = None) -> Person:
        return Person(self, user_id, user_id if chat_id is None else chat_id)

    async def state(self, user_id: int) -> ConversationState:
        async with self.guide.store.session() as s:
            return await s.load_state(UserKey("telegram", str(user_id)), self.clock.now())

    async def profile(self, user_id: int) -> Profile:
        async with self.guide.store.session() as s:
            return await s.load_profile(UserKey("telegram", str(user_id)))


def address(user_id: int) -> Address:
    return Address("telegram", str(user_id), str(user_id), True)


@dataclass
class Person:
    h: Harness
    user_id: int
    chat_id: int

    @property
    def fake(self) -> FakeBotAPI:
        return self.h.fake

    def seen(self) -> list[dict[str, Any]]:
        return self.fake.bot_messages(self.chat_id)

    async def say(self, text: str, *, until: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Type `text`; returns the bot's new messages once one contains `until`."""
        before = len(self.seen())
        self.fake.push_message(self.user_id, text, chat_id=self.chat_id, **kwargs)
        return await self.replies_after(before, until)

    async def replies_after(self, before: int, until: str) -> list[dict[str, Any]]:
        def arrived() -> list[dict[str, Any]] | None:
            new = self.seen()[before:]
            return new if any(until in m.get("text", "") for m in new) else None

        return await self.fake.wait_for(arrived)

    def button(self, label: str) -> tuple[dict[str, Any], str]:
        """The newest message with a button labelled `label`, and its callback data."""
        for message in reversed(self.seen()):
            for row in message.get("reply_markup", {}).get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label:
                        return message, button["callback_data"]
        raise AssertionError(f"no button {label!r} in the chat")

    async def press(self, label: str, *, until: str) -> list[dict[str, Any]]:
        """Tap a button; waits for the reply and for the tapped message's edit."""
        message, data = self.button(label)
        before = len(self.seen())
        self.fake.push_callback(self.user_id, message["message_id"], data, chat_id=self.chat_id)
        new = await self.replies_after(before, until)
        edited = self.fake.messages[self.chat_id][message["message_id"]]
        await self.fake.wait_for(lambda: edited["text"].endswith(f"\n\n→ {label}"))
        assert "reply_markup" not in edited
        return new


async def start_harness(
    fake: FakeBotAPI, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> Harness:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake.base_url)
    monkeypatch.setenv("PAUSECHECK_DATABASE_URL", MEMORY_URL)
    monkeypatch.setenv("PAUSECHECK_TIMEZONE", "Europe/London")
    # The fake has no flood limits of its own unless a test injects them.
    monkeypatch.setenv("PAUSECHECK_TELEGRAM_RATE", "1000")
    monkeypatch.setenv("PAUSECHECK_TELEGRAM_RATE_PER_CHAT", "1000")
    monkeypatch.setenv("PAUSECHECK_TELEGRAM_GROUP_MESSAGES_PER_MINUTE", "60000")
    settings = Settings(_env_file=None).model_copy(update=overrides)
    # Midday, so a follow-up asked for "in 20 minutes" is not moved past quiet hours.
    clock = ManualClock(datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0))
    fake.now = lambda: clock.now().timestamp()
    guide = await open_guide(settings, clock)
    adapter = TelegramAdapter(guide, settings, clock=clock, poll_timeout=1, retry=FAST_RETRY)
    await guide.add_platform("telegram", adapter)
    try:
        await adapter.start()
    except BaseException:
        await guide.close()
        raise
    return Harness(fake, guide, adapter, clock)


async def stop_harness(h: Harness) -> None:
    await h.adapter.stop()
    await h.guide.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotAPI]:
    server = FakeBotAPI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def tg(fake: FakeBotAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    h = await start_harness(fake, monkeypatch)
    yield h
    await stop_harness(h)
