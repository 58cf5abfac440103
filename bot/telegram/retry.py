"""Retrying one Bot API call: through flood control and brief network trouble.

Two layers handle `RetryAfter` (HTTP 429). PTB's `AIORateLimiter` retries first and,
while it waits, holds back every other request of the bot, which is what Telegram asks
for. Should a storm outlast its retries, the loop here keeps waiting as told, within a
time budget (a minute per call), so a reply is delayed rather than lost. The budget
keeps a send of a few calls under the dispatcher's five-minute lease, after which a
follow-up would be sent again.

Network errors (timeouts, dropped connections, 5xx) are retried a few times with
exponential backoff and jitter. A retried send whose first attempt did reach Telegram
shows twice; a duplicate is the lesser harm than a reply that never comes.
`BadRequest` is a `NetworkError` in PTB but would fail the same way again, so it is
never retried; neither is `Forbidden` (the person blocked the bot).

A wave message (a capped send, bot/outbox.py) keeps the wave's pace when it is sent
again: its request carries the send's `WaveTurn` to the limiter (PTB's
`rate_limit_args`), and the limiter, right before the request goes out, lets the
first go at the moment the outbox handed the send over and makes any other take a
new moment from the outbox: a retry from the loop here or from PTB's limiter after a
429, and a request that was held back by a 429's pause (handed over just before it,
it would go out with everything else the pause released).
"""

from __future__ import annotations

import asyncio
import logging
import random
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import AIORateLimiter
from telegram.warnings import PTBDeprecationWarning

from bot.outbox import WaveTurn

log = logging.getLogger(__name__)

T = TypeVar("T")


_Result = bool | dict[str, Any] | list[dict[str, Any]]


class _HandedOn(logging.Filter):
    """PTB's limiter logs giving up on a 429 storm as an error with a traceback. Here
    that is a hand-over, not a failure: `with_retries` goes on waiting as Telegram
    asks, within its budget, and logs an error itself if the budget runs out. So the
    record becomes a warning, without the traceback (which says nothing new)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Rate limit hit after maximum of"):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"{record.msg}; waiting on in the call's own retries"
            record.exc_info = record.exc_text = None
        return True


_HANDED_ON = _HandedOn()


class PausingRateLimiter(AIORateLimiter):
    """PTB's limiter, saying whether it is holding every request back for a 429's
    `retry_after` (the outbox then hands no wave message over: `Outbox.hold_waves_while`),
    and keeping a wave message's requests at the wave's pace (a `WaveTurn` as the
    call's `rate_limit_args`; see the module). Reads the limiter's own event, as PTB's
    `process_request` sets it (pinned in constraints.txt)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # PTB's logger for this class (telegram._utils.logging.get_logger); adding the
        # same filter again is a no-op.
        logging.getLogger("telegram.ext.AIORateLimiter").addFilter(_HANDED_ON)
        # 429s met so far: a request that saw this change while on its way was held.
        self._pauses = 0

    @property
    def paused(self) -> bool:
        return not self._retry_after_event.is_set()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, _Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | WaveTurn | None,
    ) -> _Result:
        turn = rate_limit_args if isinstance(rate_limit_args, WaveTurn) else None
        # Held back by a pause: one under way as it came, or one begun since.
        paused_on_arrival = self.paused
        pauses_on_arrival = self._pauses

        async def request(*call_args: Any, **call_kwargs: Any) -> _Result:
            # Here PTB's wait for a pause is over and the request goes out next.
            if turn is not None:
                held = paused_on_arrival or self._pauses != pauses_on_arrival
                await turn.paced(held=held)
            try:
                return await callback(*call_args, **call_kwargs)
            except RetryAfter:
                self._pauses += 1
                raise

        # PTB's own argument (how many times to retry a 429) when no turn came instead.
        limit_args = None if isinstance(rate_limit_args, WaveTurn) else rate_limit_args
        return await super().process_request(request, args, kwargs, endpoint, data, limit_args)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    network_attempts: int = 4
    first_backoff: float = 0.5
    max_backoff: float = 8.0
    # Seconds of flood-control waiting one call may spend before giving up. A follow-up
    # of a few calls must still finish inside the dispatcher's five-minute lease.
    flood_budget: float = 60.0
    # Retries inside PTB's AIORateLimiter before a RetryAfter reaches our loop.
    limiter_retries: int = 3


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB warns that the int form is deprecated; both forms are read here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`await call()`, again after flood control or a network error, as the policy
    allows; the last error is raised when it does not."""
    failures = 0
    flood_waited = 0.0
    while True:
        try:
            return await call()
        except RetryAfter as exc:
            delay = retry_seconds(exc)
            if flood_waited + delay > policy.flood_budget:
                log.error("flood control outlasted the budget call=%s", what)
                raise
            flood_waited += delay
            log.warning("flood control call=%s retry_after=%.1fs", what, delay)
            await sleep(delay)
        except BadRequest:
            raise
        except NetworkError as exc:
            failures += 1
            if failures >= policy.network_attempts:
                raise
            backoff = min(policy.max_backoff, policy.first_backoff * 2 ** (failures - 1))
            delay = backoff * random.uniform(0.5, 1.0)  # jitter: retries of many calls spread
            log.warning(
                "network error call=%s attempt=%d error=%s; retrying in %.2fs",
                what,
                failures,
                type(exc).__name__,
                delay,
            )
            await sleep(delay)
