"""Taking Discord events in, and stopping that for a graceful stop.

On SIGTERM `pausecheck run` first calls the adapter's `stop_receiving` (bot/cli.py):
from then on no new slash command, button press or DM reaches the engine, the events
already taken are finished (their replies included), and only then do the outboxes
finish their sends and the gateway close. The gateway stays connected meanwhile, so an
event arriving late can still be answered kindly instead of timing out on Discord's
"The application did not respond" (an interaction must be answered within 3 s).

The wait for the events in hand is bounded: an engine stuck on a lost database must
not hold the stop past what the service manager allows (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)

# How long the events in hand get to finish: with the outbox's 20 s
# (bot.app.SHUTDOWN_GRACE) within the unit's TimeoutStopSec (docs/deploy.md).
EVENT_GRACE = 10.0


class Intake:
    """Open until `close`; counts the events taken and not yet finished."""

    def __init__(self, grace: float = EVENT_GRACE) -> None:
        self._grace = grace
        self._open = True
        self._in_hand = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def open(self) -> bool:
        return self._open

    @contextlib.contextmanager
    def taken(self) -> Iterator[None]:
        """Around the handling of one event, from admission to its last reply."""
        self._in_hand += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_hand -= 1
            if self._in_hand == 0:
                self._idle.set()

    async def close(self) -> int:
        """Take no new events; wait (bounded) for those in hand. How many were still
        unfinished when the wait ran out (0: all finished)."""
        self._open = False
        try:
            async with asyncio.timeout(self._grace):
                await self._idle.wait()
        except TimeoutError:
            log.warning(
                "discord events still in hand after %.0f s: stopping without them events=%d",
                self._grace,
                self._in_hand,
            )
        return self._in_hand
