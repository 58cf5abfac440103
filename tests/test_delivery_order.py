"""Order within one chat, whatever goes wrong (dialogs.delivery): a row left pending
holds back every later row to its address, across sends, lanes and restarts, until
it went; other chats never wait for it. On SQLite and PostgreSQL, with a manual
clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from bot.outbox import Outbox
from dialogs.clock import ManualClock
from dialogs.delivery import Delivered, Delivery
from dialogs.events import Address, Outbound
from dialogs.store import OutboundKind, OutboundStatus
from storage import SqlStore, open_store
from tests.postgres import postgres_schema_url
from tests.test_delivery import ALICE, BOB, fates, owe

REPLY = "Done, I'll check in then"
FOLLOW_UP = "Hi, checking in"


class Platform:
    """Records every message it takes, per chat; fails the next calls to a chat as
    told (a 502 after the sender's retries, a 429 storm that outlasted them)."""

    tracks_delivery = True

    def __init__(self) -> None:
        self.taken: list[tuple[str, str]] = []
        self.failures: dict[str, int] = {}
        self.gate: asyncio.Event | None = None

    def fail(self, chat_id: str, times: int = 1) -> None:
        self.failures[chat_id] = times

    async def send(
        self, address: Address, messages: Sequence[Outbound], delivered: Delivered | None = None
    ) -> None:
        assert delivered is not None  # delivery reports to a tracking sender
        if self.gate is not None:
            await self.gate.wait()
        if self.failures.get(address.chat_id, 0) > 0:
            self.failures[address.chat_id] -= 1
            raise ConnectionError("502 Bad Gateway")
        for index, message in enumerate(messages):
            self.taken.append((address.chat_id, message.text))
            delivered(index)

    def texts(self, chat_id: str) -> list[str]:
        return [text for chat, text in self.taken if chat == chat_id]


def delivery(store: SqlStore, clock: ManualClock, platform: Platform) -> Delivery:
    lanes = {"test": platform}
    return Delivery(store, clock, interactive=lanes, scheduled=lanes)


async def test_a_failed_reply_goes_before_the_next_reply_and_the_follow_up(
    store: SqlStore, clock: ManualClock
) -> None:
    platform = Platform()
    guide = delivery(store, clock, platform)
    platform.fail("chat-a")
    reply = await owe(store, clock, ALICE, REPLY)
    report = await guide.send(reply)
    assert report.left == 1 and platform.taken == []
    # The person's next turn, then a due follow-up: each send sends what is owed
    # before it first.
    await guide.send(await owe(store, clock, ALICE, "Noted."))
    await guide.send(await owe(store, clock, ALICE, FOLLOW_UP, kind=OutboundKind.SCHEDULED))
    assert platform.texts("chat-a") == [REPLY, "Noted.", FOLLOW_UP]
    assert [(seq, status) for _, seq, status, _ in await fates(store)] == [
        (1, "sent"),
        (2, "sent"),
        (3, "sent"),
    ]


async def test_while_the_failure_lasts_nothing_later_goes_and_then_all_go_in_order(
    store: SqlStore, clock: ManualClock
) -> None:
    platform = Platform()
    guide = delivery(store, clock, platform)
    platform.fail("chat-a", times=3)  # the first send and two retries of it
    await guide.send(await owe(store, clock, ALICE, REPLY))
    later = await guide.send(await owe(store, clock, ALICE, "Noted."))
    follow_up = await guide.send(
        await owe(store, clock, ALICE, FOLLOW_UP, kind=OutboundKind.SCHEDULED)
    )
    assert platform.taken == []
    assert (later.left, follow_up.left) == (2, 3)  # each tried the earliest, no further
    # Recovered: the sweep, after the lease, sends them from the lowest seq.
    clock.advance(timedelta(seconds=31))
    assert await guide.resend_unsent() == 3
    assert platform.texts("chat-a") == [REPLY, "Noted.", FOLLOW_UP]


async def test_other_chats_are_not_held_up(store: SqlStore, clock: ManualClock) -> None:
    platform = Platform()
    guide = delivery(store, clock, platform)
    platform.fail("chat-a", times=2)
    owed = await owe(store, clock, ALICE, REPLY) + await owe(store, clock, BOB, "for bob")
    await guide.send(owed)
    await guide.send(await owe(store, clock, ALICE, FOLLOW_UP) + await owe(store, clock, BOB, "2"))
    assert platform.texts("chat-b") == ["for bob", "2"]
    assert platform.texts("chat-a") == []


async def test_a_follow_up_sent_on_another_lane_meanwhile_waits_for_the_reply(
    store: SqlStore, clock: ManualClock
) -> None:
    """The soak's finding: the reply's send failed inside the outbox (a 502; a 429
    storm that outlasts the retries is the same) while the dispatcher sent the
    follow-up on the wave's lane. Both go through the real outbox, both lanes."""
    platform = Platform()
    async with Outbox.for_platform(platform, "test") as outbox:
        guide = Delivery(
            store,
            clock,
            interactive={"test": outbox.interactive},
            scheduled={"test": outbox.scheduled},
        )
        platform.fail("chat-a")
        reply = await owe(store, clock, ALICE, REPLY, "In 20 minutes, then.")
        follow_up = await owe(store, clock, ALICE, FOLLOW_UP, kind=OutboundKind.SCHEDULED)
        failed, sent = await asyncio.gather(guide.send(reply), guide.send(follow_up))
        # The follow-up's send sent the reply first, no sweep needed.
        assert (failed.left, sent.sent) == (2, 3)
    assert platform.texts("chat-a") == [REPLY, "In 20 minutes, then.", FOLLOW_UP]
    assert {status for _, _, status, _ in await fates(store)} == {"sent"}


async def test_a_later_send_that_begins_first_waits_for_the_earlier_one(
    store: SqlStore, clock: ManualClock
) -> None:
    """Two sends to one chat at once, the later rows' first: it waits for the
    earlier rows, which their own send (or a toast's mark) settles."""
    platform = Platform()
    guide = delivery(store, clock, platform)
    reply = await owe(store, clock, ALICE, REPLY)
    follow_up = await owe(store, clock, ALICE, FOLLOW_UP, kind=OutboundKind.SCHEDULED)
    later = asyncio.create_task(guide.send(follow_up))
    await asyncio.sleep(0.05)
    assert platform.taken == [] and not later.done()
    assert (await guide.send(reply)).sent == 1
    assert (await later).sent == 1
    assert platform.texts("chat-a") == [REPLY, FOLLOW_UP]


async def test_an_earlier_row_marked_instead_of_sent_is_never_sent(
    store: SqlStore, clock: ManualClock
) -> None:
    """A stale press: the engine stored its notice, the adapter answers with a toast
    and marks the row superseded. A send to the chat meanwhile must not send it."""
    platform = Platform()
    guide = delivery(store, clock, platform)
    notice = await owe(store, clock, ALICE, "That button belongs to an earlier step")
    follow_up = await owe(store, clock, ALICE, FOLLOW_UP, kind=OutboundKind.SCHEDULED)
    later = asyncio.create_task(guide.send(follow_up))
    await asyncio.sleep(0.05)
    await guide.mark(notice, OutboundStatus.SUPERSEDED, "toast")
    await later
    assert platform.texts("chat-a") == [FOLLOW_UP]


async def test_an_expired_earlier_row_is_recorded_and_skipped(
    store: SqlStore, clock: ManualClock
) -> None:
    platform = Platform()
    guide = delivery(store, clock, platform)
    platform.fail("chat-a")
    await guide.send(await owe(store, clock, ALICE, REPLY))
    clock.advance(timedelta(minutes=11))  # a reply's 10 minutes are over
    await guide.send(await owe(store, clock, ALICE, FOLLOW_UP, kind=OutboundKind.SCHEDULED))
    assert platform.texts("chat-a") == [FOLLOW_UP]
    assert [(status, reason) for _, _, status, reason in await fates(store)] == [
        ("dropped", "expired"),
        ("sent", None),
    ]


# A restart: a second store (another process) on the same database.


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'guide.db'}"
        return
    with postgres_schema_url() as url:
        yield url


@pytest.fixture
async def two_processes(
    database: str, clock: ManualClock
) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    before = await open_store(database, clock=clock)
    after = await open_store(database, clock=clock)
    try:
        yield before, after
    finally:
        await before.close()
        await after.close()


async def test_after_a_restart_a_new_reply_waits_for_what_the_dead_process_owed(
    two_processes: tuple[SqlStore, SqlStore], clock: ManualClock
) -> None:
    before, after = two_processes
    platform = Platform()
    platform.fail("chat-a")
    await delivery(before, clock, platform).send(await owe(before, clock, ALICE, REPLY))
    # The process dies; the next one answers the person's next message at once,
    # before any sweep.
    guide = delivery(after, clock, platform)
    report = await guide.send(await owe(after, clock, ALICE, "Noted."))
    assert platform.taken == [] and report.left == 1
    assert [(status, reason) for _, _, status, reason in await fates(after)] == [
        ("pending", None),
        ("pending", "after an earlier message"),
    ]
    if after.engine.dialect.name == "sqlite":
        # One process sends for an SQLite database: at start, it takes the dead one's.
        assert await guide.resend_unsent(startup=True) == 2
    else:
        # On PostgreSQL the dead one's row waits out its lease, the later one with it.
        assert await guide.resend_unsent(startup=True) == 1
        assert platform.taken == []
        clock.advance(timedelta(seconds=31))
        assert await guide.resend_unsent() == 2
    assert platform.texts("chat-a") == [REPLY, "Noted."]
    assert {status for _, _, status, _ in await fates(after)} == {"sent"}
