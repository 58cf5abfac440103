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
"""

from __future__ import annotations

import asyncio
import logging
import random
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import AIORateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

T = TypeVar("T")


class PausingRateLimiter(AIORateLimiter):
    """PTB's limiter, saying whether it is holding every request back for a 429's
    `retry_after` (the outbox then hands no wave message over: `Outbox.hold_waves_while`).
    Reads the limiter's own event, as PTB's `process_request` sets it (pinned in
    constraints.txt)."""

    @property
    def paused(self) -> bool:
        return not self._retry_after_event.is_set()


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
