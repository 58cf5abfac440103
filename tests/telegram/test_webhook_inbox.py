"""Webhook updates go through the inbox (bot.telegram.inbox), in one process on SQLite:
an update that cannot be stored is refused so Telegram sends it again, and an older
update that arrives after a newer one was handled is still handled, on the current
state, without undoing it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from storage.models import UserRow
from tests.telegram.conftest import Harness, free_port
from tests.telegram.test_webhook import HEADER, SECRET, hooked, post

__all__ = ["hooked"]  # the fixture, shared with test_webhook.py

PERSON = 4801


async def last_update_id(h: Harness) -> int | None:
    async with h.guide.store.transaction() as session:
        value: int | None = await session.scalar(
            select(UserRow.last_update_id).where(UserRow.platform_user_id == str(PERSON))
        )
        return value


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    """Poll: the inbox's counters change without the fake seeing anything."""
    async with asyncio.timeout(within):
        for _ in itertools.count():
            if check():
                return
            await asyncio.sleep(0.02)


def texts(h: Harness) -> list[str]:
    return [m.get("text", "") for m in h.fake.bot_messages(PERSON)]


async def test_an_update_that_cannot_be_stored_is_refused_and_taken_when_sent_again(
    hooked: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await hooked.onboard(PERSON)
    inbox = hooked.adapter._inbox
    assert inbox is not None
    rows = inbox._rows
    real_put = rows.put

    async def broken(*args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("database gone")

    update = {"update_id": 700, **hooked.fake.message_update(PERSON, "/help")}
    monkeypatch.setattr(rows, "put", broken)
    assert await post(hooked.fake.webhook_url, update, {HEADER: SECRET}) == 500
    assert texts(hooked) == []
    monkeypatch.setattr(rows, "put", real_put)
    assert await post(hooked.fake.webhook_url, update, {HEADER: SECRET}) == 200
    await hooked.fake.wait_for(lambda: any(t.startswith("When it's hard") for t in texts(hooked)))
    await until(lambda: inbox.handled == 1)
    assert await rows.count() == 0


async def test_a_late_press_is_answered_and_leaves_the_newer_state(hooked: Harness) -> None:
    fake = hooked.fake
    await hooked.onboard(PERSON)
    person = hooked.person(PERSON)
    url = fake.webhook_url
    # Update 10: /about, whose question has a "Tell me more" button.
    assert (
        await post(
            url, {"update_id": 10, **fake.message_update(PERSON, "/about")}, {HEADER: SECRET}
        )
        == 200
    )
    await fake.wait_for(lambda: any("Want to know what I keep?" in t for t in texts(hooked)))
    message, data = person.button("Tell me more")
    press = {"update_id": 11, **fake.callback_update(PERSON, message["message_id"], data)}
    # Update 12 (/privacy) reaches the guide before update 11, the press.
    newer = {"update_id": 12, **fake.message_update(PERSON, "/privacy")}
    assert await post(url, newer, {HEADER: SECRET}) == 200
    await fake.wait_for(lambda: any(t.startswith("What I keep:") for t in texts(hooked)))
    inbox = hooked.adapter._inbox
    assert inbox is not None
    await until(lambda: inbox.handled == 2)
    assert await last_update_id(hooked) == 12
    before = len(texts(hooked))

    assert await post(url, press, {HEADER: SECRET}) == 200
    await until(lambda: inbox.handled == 3)
    # Handled: the press is answered (a toast), as stale, and changes nothing; the
    # person is still where the newer update put them.
    assert inbox.late == 1
    assert [c.params.get("text") for c in fake.ok_calls("answerCallbackQuery")][-1]
    assert len(texts(hooked)) == before
    assert (await hooked.state(PERSON)).flow_id == "privacy"
    assert await last_update_id(hooked) == 12
    assert await inbox._rows.count() == 0


async def test_the_fake_delivers_updates_by_webhook_past_a_dead_worker(hooked: Harness) -> None:
    """The fake Bot API in webhook mode (for multi-worker runs): each update goes to
    the next target in turn, and on to the next while one does not answer."""
    fake = hooked.fake
    await hooked.onboard(PERSON)
    dead = f"http://127.0.0.1:{free_port()}/telegram/hook"
    fake.deliver_by_webhook([dead, fake.webhook_url], SECRET)
    person = hooked.person(PERSON)
    await person.say("/help", until="When it's hard")
    await person.say("/privacy", until="What I keep:")
    await fake.webhook_idle()
    assert fake.webhook_accepted == 2
    assert fake._updates == []  # nothing left for getUpdates
