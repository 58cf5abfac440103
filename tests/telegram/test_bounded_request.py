"""The bot's Bot API calls go through a few connections, the rest waiting in line
(`bot.telegram.bounded_request`): httpcore never holds more requests than that."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram.request import HTTPXRequest

from bot.telegram.bounded_request import BoundedRequest
from tests.telegram.conftest import Harness


async def test_calls_beyond_the_connections_wait_and_all_complete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inside: list[str] = []
    entered: list[str] = []
    most = 0
    release = asyncio.Event()

    async def exchange(self: HTTPXRequest, url: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal most
        inside.append(url)
        entered.append(url)
        most = max(most, len(inside))
        await release.wait()
        inside.remove(url)
        return 200, url.encode()

    monkeypatch.setattr(HTTPXRequest, "do_request", exchange)
    request = BoundedRequest(2)
    calls = [
        asyncio.create_task(request.do_request(f"http://127.0.0.1:9/bot/m{n}", "POST"))
        for n in range(10)
    ]
    for _ in range(20):  # let every call reach the line
        await asyncio.sleep(0)
    assert len(inside) == 2
    release.set()
    answers = await asyncio.gather(*calls)
    assert most == 2
    assert [status for status, _ in answers] == [200] * 10
    # First come, first served.
    assert entered == [f"http://127.0.0.1:9/bot/m{n}" for n in range(10)]


def test_at_least_one_connection() -> None:
    with pytest.raises(ValueError):
        BoundedRequest(0)


async def test_the_bot_calls_through_the_bounded_request(tg: Harness) -> None:
    application = tg.adapter._bot_app()
    assert isinstance(application.bot.request, BoundedRequest)
