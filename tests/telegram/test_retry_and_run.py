"""The retry rules on their own, and `pausecheck run` starting Telegram end to end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import pytest
from telegram.error import BadRequest, NetworkError, RetryAfter

from bot.config import Settings
from bot.outbox import Outbox, WaveTurn
from bot.telegram.retry import PausingRateLimiter, RetryPolicy, with_retries
from tests.conftest import MEMORY_URL
from tests.telegram.fake_bot_api import DEFAULT_TOKEN, FakeBotAPI


def failing(errors: list[Exception]) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "sent"

    return call, calls


async def no_sleep(seconds: float) -> None:
    slept.append(seconds)


slept: list[float] = []


async def test_flood_waits_are_honoured_until_the_budget_runs_out() -> None:
    slept.clear()
    call, calls = failing([RetryAfter(2), RetryAfter(3)])
    policy = RetryPolicy(flood_budget=10)
    assert await with_retries(call, policy, what="t", sleep=no_sleep) == "sent"
    assert slept == [2.0, 3.0] and len(calls) == 3
    call, _ = failing([RetryAfter(6), RetryAfter(6)])
    with pytest.raises(RetryAfter):
        await with_retries(call, policy, what="t", sleep=no_sleep)


async def test_network_errors_back_off_a_few_times_and_bad_requests_never_retry() -> None:
    slept.clear()
    policy = RetryPolicy(network_attempts=3, first_backoff=1.0)
    call, calls = failing([NetworkError("reset"), NetworkError("reset"), NetworkError("x")])
    with pytest.raises(NetworkError):
        await with_retries(call, policy, what="t", sleep=no_sleep)
    assert len(calls) == 3 and len(slept) == 2 and 0.5 <= slept[0] <= 1.0 < slept[1] <= 2.0
    call, calls = failing([BadRequest("chat not found")])
    with pytest.raises(BadRequest):
        await with_retries(call, policy, what="t", sleep=no_sleep)
    assert len(calls) == 1


class Turn(WaveTurn):
    """A wave send's turn that records, for each of its requests, whether the
    limiter said it was held back by a pause."""

    def __init__(self) -> None:
        super().__init__(cast(Outbox, None))
        self.asked: list[bool] = []

    async def paced(self, *, held: bool = False) -> None:
        self.asked.append(held)


async def test_the_limiter_asks_a_wave_request_held_by_a_429_for_a_new_moment() -> None:
    # Its moment was when the outbox handed it over; after the pause it is gone, and
    # sent at once it would go out with everything else the pause released.
    limiter = PausingRateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=1)
    refused = asyncio.Event()

    async def refused_once() -> bool:
        if not refused.is_set():
            refused.set()
            raise RetryAfter(0)  # python-telegram-bot then pauses every request 0.1 s
        return True

    async def accepted() -> bool:
        return True

    def request(
        call: Callable[[], Coroutine[Any, Any, bool]], turn: Turn | None
    ) -> Awaitable[object]:
        return limiter.process_request(call, (), {}, "sendMessage", {"chat_id": 7}, turn)

    limited, held = Turn(), Turn()
    first = asyncio.ensure_future(request(refused_once, limited))
    await refused.wait()
    assert limiter.paused
    second = asyncio.ensure_future(request(accepted, held))
    reply = asyncio.ensure_future(request(accepted, None))
    # typeshed calls gather's result a tuple; asyncio gives a list.
    results = await asyncio.wait_for(asyncio.gather(first, second, reply), 5)
    assert list(results) == [True] * 3
    on_time = Turn()
    await request(accepted, on_time)
    # The refused one asks again after the pause; the one that came during it was held.
    assert limited.asked == [False, True]
    assert held.asked == [True]
    assert on_time.asked == [False]


async def test_pausecheck_run_starts_telegram_when_the_token_is_set(
    fake: FakeBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import _run

    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake.base_url)
    monkeypatch.setenv("PAUSECHECK_DATABASE_URL", MEMORY_URL)
    monkeypatch.delenv("DISCORD_BOT_TOKEN", raising=False)
    stop = asyncio.Event()
    running = asyncio.create_task(_run(Settings(_env_file=None), stop))
    try:
        # Polling has begun once the webhook is cleared (a held poll is recorded only
        # when it returns); an update queued even earlier would still be fetched.
        # Start-up opens the store, loads the model and migrates: on a loaded machine
        # that alone can take several seconds, so the wait is generous (not a timing).
        await fake.wait_for(lambda: fake.ok_calls("deleteWebhook"), within=60)
        assert fake.ok_calls("setMyCommands")
        fake.push_message(4601, "/help")
        await fake.wait_for(
            lambda: any("start a pause now" in m.get("text", "") for m in fake.bot_messages(4601)),
            within=30,
        )
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
