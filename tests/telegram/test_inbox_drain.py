"""The inbox's drain (bot.telegram.inbox) on the real store: each stored update
handled once, in order, with one claim and one delete per batch (the delete claims
what came meanwhile in its own transaction, so no claim that finds nothing follows),
and an update this worker parsed on receipt is not parsed again."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from bot.telegram.inbox import WebhookInbox
from dialogs.clock import ManualClock
from storage import SqlStore
from storage.inbox_rows import InboxItem, InboxRows

PERSON = "4801"


class CountedRows(InboxRows):
    """The real rows, counting the transactions a drain opens."""

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store, "telegram", worker="a")
        self.claims = 0
        self.finishes = 0

    async def claim(self, person: str, now: datetime, lease: timedelta) -> list[InboxItem]:
        self.claims += 1
        return await super().claim(person, now, lease)

    async def finish_and_claim(
        self, items: Any, then: tuple[str, datetime, timedelta] | None
    ) -> list[InboxItem]:
        self.finishes += 1
        return await super().finish_and_claim(items, then)


def body(update_id: int) -> dict[str, Any]:
    return {"update_id": update_id, "message": {"from": {"id": int(PERSON)}, "text": "hi"}}


class Drain:
    def __init__(self, store: SqlStore, clock: ManualClock) -> None:
        self.rows = CountedRows(store)
        self.decoded: list[int] = []
        self.handled: list[int] = []
        self.hold: asyncio.Event | None = None
        self.inbox = WebhookInbox(
            self.rows, platform="telegram", decode=self.decode, handle=self.handle, clock=clock
        )

    def decode(self, stored: dict[str, Any]) -> int:
        self.decoded.append(stored["update_id"])
        return int(stored["update_id"])

    async def handle(self, update: int) -> None:
        if self.hold is not None:
            await self.hold.wait()
        self.handled.append(update)

    async def settle(self) -> None:
        while self.inbox._tasks:
            await asyncio.wait(set(self.inbox._tasks))


async def test_one_update_is_one_claim_and_one_delete_and_is_not_parsed_again(
    store: SqlStore, clock: ManualClock
) -> None:
    d = Drain(store, clock)
    await d.inbox.receive(body(1), 1, PERSON, parsed=1)
    await d.settle()
    assert d.handled == [1]
    assert (d.rows.claims, d.rows.finishes) == (1, 1)
    assert d.decoded == []  # handled as the server parsed it
    assert await d.rows.count() == 0


async def test_updates_received_while_one_is_handled_are_taken_by_the_delete_in_order(
    store: SqlStore, clock: ManualClock
) -> None:
    d = Drain(store, clock)
    d.hold = asyncio.Event()
    await d.inbox.receive(body(1), 1, PERSON, parsed=1)
    await asyncio.sleep(0.05)  # the drain holds update 1
    # Two more arrive meanwhile: one here, one stored by another worker (which found
    # this worker's lease live and left it here), not parsed by this one.
    await d.inbox.receive(body(2), 2, PERSON, parsed=2)
    other = InboxRows(store, "telegram", worker="b")
    await other.put(3, PERSON, body(3), clock.now())
    assert await other.claim(PERSON, clock.now(), timedelta(seconds=10)) == []
    d.hold.set()
    await d.settle()
    assert d.handled == [1, 2, 3]
    # claim [1]; delete 1 + claim [2, 3]; delete 2, 3 + claim nothing.
    assert (d.rows.claims, d.rows.finishes) == (1, 2)
    assert d.decoded == [3]
    assert await d.rows.count() == 0


async def test_a_stored_update_not_received_here_is_decoded(
    store: SqlStore, clock: ManualClock
) -> None:
    d = Drain(store, clock)
    await InboxRows(store, "telegram", worker="b").put(5, PERSON, body(5), clock.now())
    clock.advance(timedelta(seconds=5))
    assert await d.inbox.sweep() == 1
    await d.settle()
    assert d.handled == [5]
    assert d.decoded == [5]
