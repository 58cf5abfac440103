"""Delivering due follow-ups: claim rows, run them through the engine, hand the
replies to the platform's sender.

The scheduler only decides *when* to call `run_due`; the rows in the store are
the truth about *what* is due, so a restart loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from dialogs.clock import Clock
from dialogs.engine import DueStatus, Engine
from dialogs.events import Address, Outbound
from dialogs.store import FollowUpStatus, Store
from dialogs.user_ref import user_ref

log = logging.getLogger(__name__)


class Sender(Protocol):
    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        """Deliver messages to a chat; raises if the platform refused them."""
        ...


class Dispatcher:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        senders: Mapping[str, Sender],
        clock: Clock,
        *,
        batch_size: int = 100,
    ) -> None:
        self._store = store
        self._engine = engine
        self._senders = senders
        self._clock = clock
        self._batch_size = batch_size

    @property
    def platforms(self) -> tuple[str, ...]:
        """The platforms this dispatcher can deliver to (senders may be added late)."""
        return tuple(self._senders)

    async def run_due(self) -> int:
        """Deliver everything due now on the platforms we have senders for;
        returns how many follow-ups were handled (delivered, postponed or missed)."""
        handled = 0
        platforms = self.platforms
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
                if outcome.status is not DueStatus.DELIVERED or outcome.address is None:
                    continue
                try:
                    await self._senders[outcome.address.platform].send(
                        outcome.address, outcome.messages
                    )
                except Exception:
                    # The row already says SENT (committed with the conversation state);
                    # correct it so the failure is visible in the store, not only the log.
                    log.exception(
                        "follow-up send failed id=%d user=%s",
                        followup.id,
                        user_ref(followup.user.platform, followup.user.user_id),
                    )
                    await self._mark(followup.id, FollowUpStatus.FAILED)

    async def _mark(self, followup_id: int, status: FollowUpStatus) -> None:
        async with self._store.session() as session:
            await session.set_followup_status(followup_id, status, self._clock.now())
