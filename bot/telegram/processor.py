"""Updates run concurrently across people, one at a time for each person, and one
person's flood cannot hold up anyone else.

PTB's default processes one update at a time, so one person's slow reply would hold up
everyone. Its plain concurrent mode would let two quick taps of one person race each
other. This keeps each person's updates in arrival order and everyone else's in
parallel, through `bot.person_queue.PersonQueue`:

- PTB's `BaseUpdateProcessor.process_update` takes one of its (256) concurrency slots
  and only then calls `do_process_update`. A per-person lock taken there would be
  waited for *inside* a slot: after 300 messages from one person, every slot was
  held by that person's waiting updates and another person's /sos waited 43 s. So
  `process_update` itself is overridden: the person's turn first, the slot after.
  PTB marks it `@final` for type checkers only; its contract (run the coroutine, at
  most `max_concurrent_updates` at once) is kept.
- A burst beyond the cap (20 in 10 s by default) is dropped, with one kind notice
  (`on_dropped`), and a crisis or danger signal or /sos (`urgent`) jumps that
  person's own queue.

The queues live only while a person has updates in flight or recent: they order work,
they are not conversation state, and a restart loses nothing.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from bot.person_queue import DEFAULT_BURST, DEFAULT_WINDOW, Admission, PersonQueue

log = logging.getLogger(__name__)

Urgency = Callable[[object], bool]
OnDropped = Callable[[object, Admission], Awaitable[None]]


def person_key(update: object) -> int | None:
    if isinstance(update, Update) and update.effective_user is not None:
        return update.effective_user.id
    return None


class PerPersonProcessor(BaseUpdateProcessor):
    def __init__(
        self,
        max_concurrent_updates: int = 256,
        *,
        burst: int = DEFAULT_BURST,
        window: float = DEFAULT_WINDOW,
        urgent: Urgency | None = None,
        on_dropped: OnDropped | None = None,
        finished: Callable[[object], None] | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_concurrent_updates)
        # Told when each update is done with, handled or dropped (bot.telegram.confirm).
        self._finished = finished
        self._queue: PersonQueue[int] = PersonQueue(burst=burst, window=window, now=now)
        self._urgent = urgent
        self._on_dropped = on_dropped

    @property
    def queue(self) -> PersonQueue[int]:
        return self._queue

    async def process_update(  # type: ignore[misc]  # see the module docstring
        self, update: object, coroutine: Awaitable[Any]
    ) -> None:
        try:
            await self._process(update, coroutine)
        finally:
            if self._finished is not None:
                self._finished(update)

    async def _process(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = person_key(update)
        if key is None:
            async with self._semaphore:
                await self.do_process_update(update, coroutine)
            return
        urgent = self._urgent is not None and self._urgent(update)

        async def in_a_slot() -> None:
            async with self._semaphore:
                await self.do_process_update(update, coroutine)

        admission = await self._queue.run(key, in_a_slot, urgent=urgent)
        if admission.ran:
            return
        if inspect.iscoroutine(coroutine):
            coroutine.close()  # never run: no "was never awaited" warning
        if self._on_dropped is not None:
            try:
                await self._on_dropped(update, admission)
            except Exception:
                log.warning("flood notice not sent", exc_info=True)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        await coroutine

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free: the queues go with the updates in flight."""
