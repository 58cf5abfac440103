"""The fake's `hold`: a held call is never answered until `release`, every time. A
release answers the calls held then, not the ones held after it: the soak holds a
call before each kill it aims at the crash window, and a later hold answered at once
(503) would make the guide send the message again while it is still alive, a
duplicate outside any crash window."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.telegram.fake_bot_api import FakeBotAPI


async def _send(fake: FakeBotAPI, http: aiohttp.ClientSession, text: str) -> int:
    async with http.post(
        f"{fake.base_url}{fake.token}/sendMessage", data={"chat_id": "5", "text": text}
    ) as response:
        return response.status


async def test_each_hold_waits_for_its_own_release(fake: FakeBotAPI) -> None:
    async with aiohttp.ClientSession() as http:
        for n in range(2):
            fake.hold("sendMessage", accept=True)
            call = asyncio.create_task(_send(fake, http, f"message {n}"))
            await fake.wait_for(lambda n=n: len(fake.held) == n + 1)  # type: ignore[misc]
            await asyncio.sleep(0.3)
            assert not call.done(), f"hold {n + 1} was answered before its release"
            fake.release()
            assert await asyncio.wait_for(call, 5) == 503
        # Both took effect before they were held (accept=True).
        assert [m["text"] for m in fake.bot_messages(5)] == ["message 0", "message 1"]
