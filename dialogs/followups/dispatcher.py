"""Delivering due follow-ups: claim rows, run them through the engine, hand the
replies to the platform's sender, and only then mark them sent.

The scheduler only decides *when* to call `run_due`; the rows in the store are
the truth about *what* is due, so a restart loses nothing.

Delivery is at least once, with one duplicate at most per crash:
1. `claim_due` moves a row PENDING -> CLAIMED (one claimer wins, across processes);
2. the engine runs the flow and, in the same transaction as the person's new
   conversation state, stores the rendered messages on the row (DELIVERING);
3. the messages go to the platform;
4. the row is marked SENT.
A crash before 2 leaves a CLAIMED row that `recover` returns to PENDING after the
lease. A crash between 2 and 3 leaves a DELIVERING row that `recover` re-sends from
its stored messages: sent once. Only a crash between 3 and 4 (the platform accepted
the messages, the mark did not commit) sends them twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Protocol

from dialogs.clock import Clock
from dialogs.engine import DueStatus, Engine
from dialogs.events import Address, Outbound
from dialogs.routing import by_destination
from dialogs.store import FollowUp, FollowUpStatus, Store
from dialogs.user_ref import user_ref

log = logging.getLogger(__name__)


class Sender(Protocol):
    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        """Deliver messages to a chat; raises if the platform refused them
        (`RecipientUnreachable` when the person blocked the bot or closed DMs)."""
        ...


class RecipientUnreachable(Exception):
    """The platform says this person cannot be messaged (blocked, DMs closed)."""


class NotSent(Exception):
    """Nothing was sent because sending is shutting down (not a refusal): the row
    stays DELIVERING for `recover` to send after the restart, and this round stops."""


class Dispatcher:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        senders: Mapping[str, Sender],
        clock: Clock,
        *,
        batch_size: int = 100,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        self._store = store
        self._engine = engine
        self._senders = senders
        self._clock = clock
        self._batch_size = batch_size
        self._lease = lease

    @property
    def platforms(self) -> tuple[str, ...]:
        """The platforms this dispatcher can deliver to (senders may be added late)."""
        return tuple(self._senders)

    async def run_due(self) -> int:
        """Deliver everything due now on the platforms we have senders for; returns how
        many follow-ups were handled (delivered, re-sent, postponed, missed or held).
        Stops early, leaving rows for `recover`, when a sender says `NotSent`."""
        try:
            return await self._run_due()
        except NotSent:
            log.info("sending is shutting down; the rest waits for the next start")
            return 0

    async def _run_due(self) -> int:
        platforms = self.platforms
        handled = 0
        for stuck in await self._store.recover(self._clock.now(), self._lease, platforms):
            handled += 1
            if self._clock.now() > stuck.expires_at:
                # After a long outage, yesterday's check-in would only confuse.
                await self._mark(stuck.id, FollowUpStatus.MISSED)
                continue
            log.warning("re-sending a follow-up left delivering id=%d", stuck.id)
            await self._send(stuck, stuck.messages)
        while True:
            batch = await self._store.claim_due(self._clock.now(), self._batch_size, platforms)
            if not batch:
                return handled
            for followup in batch:
                handled += 1
                try:
                    outcome = await self._engine.start_due(followup)
                except Exception:
                    log.exception("follow-up failed id=%d", followup.id)
                    await self._mark(followup.id, FollowUpStatus.FAILED)
                    continue
                if outcome.status is DueStatus.DELIVERED:
                    await self._send(followup, outcome.messages)

    async def _send(self, followup: FollowUp, messages: Sequence[Outbound]) -> None:
        address = Address(followup.user.platform, followup.user.user_id, followup.chat_id, True)
        who = user_ref(followup.user.platform, followup.user.user_id)
        own, elsewhere = by_destination(messages)
        try:
            if own:
                await self._senders[address.platform].send(address, own)
            for destination, run in elsewhere:
                await self._send_elsewhere(followup, destination, run)
        except NotSent:
            raise
        except RecipientUnreachable:
            # No retries: a blocked bot stays blocked. Stop planning for them until
            # they write again; the loop goes on with everyone else.
            log.info("recipient unreachable user=%s", who)
            await self._unreachable(followup)
            return
        except Exception:
            log.exception("follow-up send failed id=%d user=%s", followup.id, who)
            await self._mark(followup.id, FollowUpStatus.FAILED)
            return
        await self._mark(followup.id, FollowUpStatus.SENT)

    async def _send_elsewhere(
        self, followup: FollowUp, destination: Address, run: Sequence[Outbound]
    ) -> None:
        """Best effort (a group reflection's posts and prompts): one participant who
        cannot be reached must not hold back the group or the others."""
        try:
            await self._senders[destination.platform].send(destination, run)
        except NotSent:
            raise
        except Exception as exc:
            log.info(
                "could not deliver to another address id=%d private=%s error=%s",
                followup.id,
                destination.is_private,
                type(exc).__name__,
            )

    async def _unreachable(self, followup: FollowUp) -> None:
        now = self._clock.now()
        async with self._store.session() as session:
            await session.set_followup_status(followup.id, FollowUpStatus.FAILED, now)
            profile = await session.load_profile(followup.user)
            await session.save_profile(followup.user, replace(profile, unreachable_at=now))
            await session.cancel_followups(followup.user)

    async def _mark(self, followup_id: int, status: FollowUpStatus) -> None:
        async with self._store.session() as session:
            await session.set_followup_status(followup_id, status, self._clock.now())
