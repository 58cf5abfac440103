"""Delivering due follow-ups: claim rows, run them through the engine in batches,
and hand what they said to the outbox.

The scheduler only decides *when* to call `run_due`; the rows in the store are the
truth about *what* is due, so a restart loses nothing.

For each batch:
1. `claim_due` moves up to a batch of rows PENDING -> CLAIMED (one claimer wins,
   across processes);
2. in one transaction (`Store.batch`, a savepoint for each follow-up), the engine runs
   each flow and, with the person's new conversation state, stores its messages as
   outbox rows and marks the follow-up SENT: one synced commit for the whole batch;
3. after commit, `Delivery.send` (`dialogs.delivery`) sends the rows and marks each.

A crash before 2 commits leaves CLAIMED rows that `recover` returns to PENDING after
the lease. After it, the messages are pending outbox rows and the resend sweep sends
them: once, or twice only for a row the platform accepted just before the crash and
whose mark was not yet written.

The next batch is rendered while the last one is being sent. A batch holds SQLite's
one writer while it renders, so people's replies would wait behind it: it commits as
soon as a person's transaction is waiting (`Store.someone_waiting`) or after
`batch_seconds`, and what it did not reach goes into the next. Its size follows what
sending achieves: under the platform's cap a batch is what the cap lets out in about
`batch_seconds`, so a capped wave never renders far ahead of what the platform takes.

A claim also takes no more than a batch renders: what the last batch cut short had
rendered, doubling (up to `batch_size`) while claims are rendered whole in one batch,
from an eighth of `batch_size`. Claimed rows nobody renders yet would wait on this worker
while others are idle (several workers on PostgreSQL: one took 200 of a 300 wave, one
none), sit past a short lease for another worker's round to take back, and wait for
the lease should this worker die.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

from dialogs.clock import Clock
from dialogs.delivery import (
    Delivery,
    Misaddressed,
    NotSent,
    RecipientUnreachable,
    Refused,
    Sender,
)
from dialogs.due import DueStatus
from dialogs.engine import Engine
from dialogs.events import Address
from dialogs.store import ClaimLost, FollowUp, FollowUpStatus, OutboundRow, Store

__all__ = [
    "Dispatcher",
    "Misaddressed",
    "NotSent",
    "RecipientUnreachable",
    "Refused",
    "Sender",
]

log = logging.getLogger(__name__)


class Dispatcher:
    """`senders` maps a platform to its sender for scheduled messages (read live).
    `delivery` sends and marks the outbox rows; by default one over `senders`."""

    def __init__(
        self,
        store: Store,
        engine: Engine,
        senders: Mapping[str, Sender],
        clock: Clock,
        *,
        batch_size: int = 200,
        lease: timedelta = timedelta(minutes=5),
        delivery: Delivery | None = None,
        batch_seconds: float = 0.25,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._engine = engine
        self._senders = senders
        self._clock = clock
        self._batch_size = batch_size
        self._lease = lease
        # The first round takes back, at once, what a process that died left claimed.
        self._started = False
        self._batch_seconds = batch_seconds
        # Real time for a batch's budget; a test drives it.
        self._monotonic = monotonic
        # What the next claim takes at most (see the module's docstring); kept from
        # one round to the next.
        self._claim_size = max(1, batch_size // 8)
        # A wave behind its due times keeps one round busy for minutes: the resend
        # sweep, which a round starts with, also runs between its batches when asked
        # (`want_resend`: rows were given back), or a reply a dead worker left would
        # wait for the wave's end (and be superseded once the person moved on).
        self._resend_wanted = False
        self._delivery = delivery or Delivery(store, clock, interactive=senders, scheduled=senders)

    @property
    def platforms(self) -> tuple[str, ...]:
        """The platforms this dispatcher can deliver to (senders may be added late)."""
        return tuple(self._senders)

    @property
    def delivery(self) -> Delivery:
        return self._delivery

    def want_resend(self) -> None:
        """Rows were given back (another worker died, or released them): the round
        in progress sweeps them between two batches, without waiting for its end."""
        self._resend_wanted = True

    async def run_due(self) -> int:
        """Deliver everything due now on the platforms we have senders for; returns how
        many follow-ups were handled (delivered, postponed, missed or held back).
        First re-sends outbox rows whose sending was interrupted. Stops early, leaving
        rows for the next round, when a sender says `NotSent`."""
        try:
            return await self._run_due()
        except NotSent:
            log.info("sending is shutting down; the rest waits for the next start")
            return 0

    async def _run_due(self) -> int:
        platforms = self.platforms
        handled = await self._recover(platforms)
        self._resend_wanted = False
        await self._delivery.resend_unsent()
        size = self._batch_size
        sending: asyncio.Task[float] | None = None
        last: list[OutboundRow] = []
        carried: list[FollowUp] = []
        try:
            while True:
                if self._resend_wanted:
                    self._resend_wanted = False
                    await self._delivery.resend_unsent()
                claimed = not carried
                batch = carried or await self._store.claim_due(
                    self._clock.now(), min(size, self._claim_size), platforms
                )
                if not batch:
                    break
                rows, carried = await self._render(batch)
                handled += len(batch) - len(carried)
                if carried:
                    self._claim_size = max(1, len(batch) - len(carried))
                elif claimed:
                    self._claim_size = min(self._batch_size, self._claim_size * 2)
                if sending is not None:
                    size = self._next_size(len(last), await sending)
                    sending = None
                last = rows
                sending = asyncio.create_task(self._timed_send(rows))
            if sending is not None:
                await sending
                sending = None
        finally:
            if sending is not None and not sending.done():
                # Cancelled mid-wave (shutdown): the rows stay pending for the sweep.
                sending.cancel()
        return handled

    async def _render(self, batch: Sequence[FollowUp]) -> tuple[list[OutboundRow], list[FollowUp]]:
        """Start each follow-up's flow, in one transaction: the rows to send, and the
        claimed follow-ups left for the next batch (a person was waiting, or time ran
        out)."""
        rows: list[OutboundRow] = []
        began = self._monotonic()
        async with self._store.batch():
            for n, followup in enumerate(batch):
                if n and (
                    self._store.someone_waiting() or self._monotonic() - began > self._batch_seconds
                ):
                    return rows, list(batch[n:])
                try:
                    outcome = await self._engine.start_due(followup)
                except ClaimLost:
                    # This worker stalled past its lease: another has the follow-up.
                    log.warning("follow-up claim taken over id=%d", followup.id)
                    continue
                except Exception:
                    log.exception("follow-up failed id=%d", followup.id)
                    # Only while it is still claimed: a claim that outlived its lease
                    # (this worker stalled) was taken over, and what the other worker
                    # recorded (sent, or pending again) must stand, or a follow-up
                    # sent would read failed and one given back would be lost.
                    await self._mark(
                        followup.id, FollowUpStatus.FAILED, only_from=FollowUpStatus.CLAIMED
                    )
                    continue
                if outcome.status is DueStatus.DELIVERED:
                    rows.extend(outcome.rows)
        return rows, []

    async def _timed_send(self, rows: Sequence[OutboundRow]) -> float:
        began = self._monotonic()
        await self._delivery.send(rows)
        return self._monotonic() - began

    def _next_size(self, sent: int, seconds: float) -> int:
        """A full batch while sending keeps up; else what sending achieves in about
        `batch_seconds`."""
        if sent == 0 or seconds <= self._batch_seconds:
            return self._batch_size
        return max(1, min(self._batch_size, int(sent / seconds * self._batch_seconds)))

    async def _recover(self, platforms: tuple[str, ...]) -> int:
        """What a crashed dispatcher left: CLAIMED rows go back to PENDING after the
        lease, or at once in this dispatcher's first round (`Store.recover`). A
        DELIVERING row (written before the outbox existed) has its stored messages
        moved into the outbox, or is missed past its limit."""
        handled = 0
        now = self._clock.now()
        startup, self._started = not self._started, True
        for stuck in await self._store.recover(now, self._lease, platforms, startup=startup):
            handled += 1
            if now > stuck.expires_at:
                # After a long outage, yesterday's check-in would only confuse.
                await self._mark(stuck.id, FollowUpStatus.MISSED)
                continue
            log.warning("moving a follow-up left delivering into the outbox id=%d", stuck.id)
            address = Address(stuck.user.platform, stuck.user.user_id, stuck.chat_id, True)
            async with self._store.session() as session:
                rows = await session.queue_followup(stuck.id, address, stuck.messages, now)
            await self._delivery.send(rows)
        return handled

    async def _mark(
        self, followup_id: int, status: FollowUpStatus, *, only_from: FollowUpStatus | None = None
    ) -> None:
        async with self._store.session() as session:
            await session.set_followup_status(
                followup_id, status, self._clock.now(), only_from=only_from
            )
