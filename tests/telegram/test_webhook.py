"""Webhook mode: PTB's own webhook server on 127.0.0.1, with the secret token checked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from tests.telegram.conftest import Harness, free_port, start_harness, stop_harness
from tests.telegram.fake_bot_api import FakeBotAPI

SECRET = "s3cret_token-for-tests"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture
async def hooked(fake: FakeBotAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    port = free_port()
    h = await start_harness(
        fake,
        monkeypatch,
        telegram_webhook_url=f"http://127.0.0.1:{port}/telegram/hook",
        telegram_webhook_listen="127.0.0.1",
        telegram_webhook_port=port,
        telegram_webhook_secret=SecretStr(SECRET),
    )
    yield h
    await stop_harness(h)


async def post(url: str, update: dict[str, Any], headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=update, headers=headers) as response,
    ):
        return response.status


async def test_webhook_handles_updates_with_the_secret_and_refuses_the_rest(
    hooked: Harness,
) -> None:
    fake = hooked.fake
    url = fake.webhook_url
    assert url.endswith("/telegram/hook")
    assert [c.params.get("secret_token") for c in fake.ok_calls("setWebhook")] == [SECRET]
    assert not fake.ok_calls("getUpdates")  # no polling in webhook mode

    intruder, person = 4501, 4502
    for headers in ({}, {HEADER: "wrong"}):
        update = {"update_id": 9000 + len(headers), **fake.message_update(intruder, "/help")}
        assert await post(url, update, headers) == 403

    update = {"update_id": 9100, **fake.message_update(person, "/help")}
    assert await post(url, update, {HEADER: SECRET}) == 200
    await fake.wait_for(
        lambda: any("start a pause now" in m.get("text", "") for m in fake.bot_messages(person))
    )
    assert fake.bot_messages(intruder) == []
    assert not [c for c in fake.calls if c.chat_id == intruder]
