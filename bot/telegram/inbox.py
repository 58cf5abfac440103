"""Webhook updates go through the database: stored before Telegram is answered, then
handled one person at a time, in update order, by whichever worker holds the
person's claim.

Any number of `pausecheck run` processes may sit behind one load balancer on one
database, and any of them may receive any update:

1. `receive` (the webhook server calls it for each accepted request) stores the
   update (`storage.inbox_rows`) in one short transaction; only then does the server
   answer 200. A worker killed after that leaves the update in the inbox, not lost;
   one killed before it never answered, so Telegram sends the update again.
2. It then drains the person: claims all of their stored rows (oldest update first,
   unless another worker's lease on them is live, in which case that worker drains
   them, this one included), hands them to the update processor in that order (the
   processor's per-person queue runs them one at a time and lets a crisis signal go
   first), renews the lease meanwhile, and deletes each batch once handled. The
   delete's transaction claims again, until nothing is left, so a row stored while
   it worked is not stranded.
3. A sweep on every worker (`sweep_every`) drains the people whose rows nobody is
   handling: a dead worker's, once its lease has run out, and rows whose receiver
   died before claiming them.

Handling stays idempotent: the engine claims each update id in `processed_events`
in the turn's own transaction, so an update handled twice (its worker died between
the turn's commit and the row's deletion, or its lease ran out while it stalled)
changes state once, and its reply rows are sent by the outbox's resend sweep. An
update older than one already handled for the person (delivered late, out of
order) is still handled, never dropped: a crisis signal in it must be answered. It
acts on the person's current state, like any new message (a press from an older
question is stale, as always); nothing older is restored, and the person's last
update id never goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from dialogs.clock import Clock
from dialogs.user_ref import user_ref
from storage.inbox_rows import InboxItem, InboxRows

log = logging.getLogger(__name__)

# How long a claim holds without renewal; renewed every third of it while handling.
LEASE = timedelta(seconds=10)
SWEEP_EVERY = 2.0
# Rows not claimed this long after they were stored are taken by the sweep (the
# worker that stored them died before claiming them).
UNCLAIMED_GRACE = timedelta(seconds=2)
# Updates received and parsed here, kept until handled here; those another worker
# handles are forgotten past this many.
PARSED_KEPT = 1024

Handle = Callable[[Any], Awaitable[None]]
Decode = Callable[[dict[str, Any]], Any]


class WebhookInbox:
    """`handle` runs one decoded update to its end (reply sent); `decode` turns a
    stored body back into an update (None when it cannot)."""

    def __init__(
        self,
        rows: InboxRows,
        *,
        platform: str,
        decode: Decode,
        handle: Handle,
        clock: Clock,
        lease: timedelta = LEASE,
        sweep_every: float = SWEEP_EVERY,
        unclaimed_grace: timedelta = UNCLAIMED_GRACE,
        finish_within: float = 10.0,
    ) -> None:
        self._rows = rows
        self._platform = platform
        self._decode = decode
        self._handle = handle
        self._clock = clock
        self._lease = lease
        self._sweep_every = sweep_every
        self._grace = unclaimed_grace
        self._finish_within = finish_within
        # Person -> whether more may have arrived since their drain last claimed.
        self._draining: dict[str, bool] = {}
        # Update id -> the update as the webhook server parsed it, oldest first.
        self._parsed: dict[int, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        self.received = 0
        self.handled = 0
        self.late = 0

    @property
    def worker(self) -> str:
        """The id this worker's claims carry."""
        return self._rows.worker

    async def start(self) -> None:
        """Sweep now (rows a previous run left) and every `sweep_every` seconds."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def drain_stored(self) -> int:
        """Handle every stored update nobody is handling, and return once all are
        handled; how many people had some. A long-polling process runs this at start,
        before it polls: the updates a dead one stored while they were in its hand
        (`bot.telegram.confirm`) go before anything newer."""
        people = 0
        while True:
            now = self._clock.now()
            waiting = await self._rows.waiting(now, unclaimed_before=now)
            if not waiting:
                return people
            people += len(waiting)
            for person in waiting:
                self.nudge(person)
            await asyncio.wait(set(self._tasks))

    async def receive(
        self, body: dict[str, Any], update_id: int, person: str, parsed: Any = None
    ) -> None:
        """Store an update; raises if it could not be stored (the server then answers
        an error, and Telegram sends the update again). `parsed`, the update the
        server already decoded from `body`, is handled instead of decoding it again
        if this worker is the one to handle it."""
        stored = await self._rows.put(update_id, person, body, self._clock.now())
        if stored:
            self.received += 1
        if parsed is not None:
            self._parsed[update_id] = parsed
            if len(self._parsed) > PARSED_KEPT:
                # Another worker handled it (or will): no longer worth the memory.
                del self._parsed[next(iter(self._parsed))]
        # A redelivery that is still stored is drained like a new one; one already
        # handled and deleted meets processed_events and changes nothing.
        self.nudge(person)

    def nudge(self, person: str) -> None:
        """Drain `person` soon, unless this worker is draining them already (then it
        claims again before it stops)."""
        if self._stopping:
            return
        if person in self._draining:
            self._draining[person] = True
            return
        self._draining[person] = True
        task = asyncio.get_running_loop().create_task(self._drain(person))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, person: str) -> None:
        try:
            while not self._stopping and self._draining.get(person):
                self._draining[person] = False
                items = await self._rows.claim(person, self._clock.now(), self._lease)
                while items:
                    await self._handle_items(items)
                    # The delete claims again in its own transaction: it sees every row
                    # stored before it began (another worker's too, which found this
                    # worker's lease live and left its row here). A nudge after this
                    # line is for a row it may miss, so the outer loop claims once more.
                    self._draining[person] = False
                    then = None if self._stopping else (person, self._clock.now(), self._lease)
                    items = await self._rows.finish_and_claim(items, then)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left in the inbox: the sweep drains them again after the lease.
            who = user_ref(self._platform, person) if person else "-"
            log.exception("inbox drain failed user=%s", who)
        finally:
            self._draining.pop(person, None)

    async def _handle_items(self, items: Sequence[InboxItem]) -> None:
        renewer = asyncio.get_running_loop().create_task(self._renew(items))
        try:
            # Started in update order: the processor's per-person queue runs them in
            # that order, one at a time (a crisis signal goes first).
            await asyncio.gather(*(self._handle_one(item) for item in items))
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _handle_one(self, item: InboxItem) -> None:
        kept = self._parsed.pop(item.update_id, None)
        try:
            if not item.body:
                update = None
            elif kept is not None:
                update = kept
            else:
                update = self._decode(item.body)
        except Exception as exc:
            log.error("stored update not readable, dropped error=%s", type(exc).__name__)
            return
        if update is None:
            return
        if item.late:
            self.late += 1
            log.info(
                "late update handled on the current state user=%s",
                user_ref(self._platform, item.person) if item.person else "-",
            )
        await self._handle(update)
        self.handled += 1

    async def _renew(self, items: Sequence[InboxItem]) -> None:
        every = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                await self._rows.renew(items, self._clock.now() + self._lease)
            except Exception as exc:
                log.warning("inbox lease not renewed error=%s", type(exc).__name__)

    async def sweep(self) -> int:
        """Drain everyone whose rows nobody is handling; how many people."""
        now = self._clock.now()
        people = await self._rows.waiting(now, unclaimed_before=now - self._grace)
        for person in people:
            self.nudge(person)
        return len(people)

    async def _sweep_forever(self) -> None:
        while not self._stopping:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("inbox sweep failed error=%s", type(exc).__name__)
            await asyncio.sleep(self._sweep_every)

    async def stop(self) -> None:
        """Take nothing new, let the batches in hand finish (up to `finish_within`), and
        hand back what is still claimed so another worker takes it at once."""
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._finish_within)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        try:
            released = await self._rows.release()
        except Exception as exc:
            log.warning("inbox claims not released error=%s", type(exc).__name__)
            return
        if released:
            log.info("inbox claims handed back count=%d", released)
