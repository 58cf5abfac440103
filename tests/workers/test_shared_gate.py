"""The outbox's gate to a shared cap (bot/shared_cap.py), with a budget in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bot.outbox import Outbox, Priority
from bot.shared_cap import SharedGate
from dialogs.events import Address, Outbound

SCHEDULED = Address("telegram", "u1", "c1")
REPLY = Address("telegram", "u2", "c2")


class Fake:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.sent.extend(m.text for m in messages)


class Budget:
    """Fails while `down`; records what was asked of it."""

    def __init__(self) -> None:
        self.down = True
        self.asked: list[float] = []
        self.failed = asyncio.Event()

    async def reserve(self, seconds: float) -> float:
        self.asked.append(seconds)
        if self.down:
            if len(self.asked) >= 2:
                self.failed.set()  # failed, waited, and failed again
            raise OSError("database unreachable")
        return 0.0


async def test_a_wave_waits_while_the_shared_budget_cannot_be_reached() -> None:
    fake, budget = Fake(), Budget()
    outbox = Outbox(fake, rate_per_second=30.0)
    outbox.share_cap(budget)
    await outbox.start()
    try:
        sending = asyncio.create_task(
            outbox.send(SCHEDULED, [Outbound("wave")], Priority.SCHEDULED)
        )
        async with asyncio.timeout(10):
            await budget.failed.wait()
        assert fake.sent == []  # never past the cap on the local window alone
        budget.down = False
        await sending
        assert fake.sent == ["wave"]
        # Each capped message takes its share of the second, a little long.
        assert budget.asked[-1] == pytest.approx(1.10 / 30)
    finally:
        await outbox.close()


async def test_replies_go_at_once_and_are_charged_to_the_shared_budget() -> None:
    fake, budget = Fake(), Budget()
    budget.down = False
    outbox = Outbox(fake, rate_per_second=30.0, replies_per_second=100.0)
    outbox.share_cap(budget)
    await outbox.start()
    try:
        await outbox.send(REPLY, [Outbound("a"), Outbound("b")], Priority.INTERACTIVE)
        assert fake.sent == ["a", "b"]
    finally:
        await outbox.close()
    # Charged in the background, written by the time the outbox closed.
    assert budget.asked == [pytest.approx(2 * 1.10 / 30)]


async def test_a_capped_message_of_several_requests_charges_the_rest_to_the_line() -> None:
    # A Discord check-in that opens the DM channel first: one moment waited for,
    # the second request charged to the line after it went.
    fake, budget = Fake(), Budget()
    budget.down = False
    outbox = Outbox(fake, rate_per_second=30.0)
    outbox.weigh = lambda address, messages: 2
    outbox.share_cap(budget)
    await outbox.start()
    try:
        await outbox.send(SCHEDULED, [Outbound("check-in")], Priority.SCHEDULED)
        assert fake.sent == ["check-in"]
    finally:
        await outbox.close()
    assert budget.asked == [pytest.approx(1.10 / 30), pytest.approx(1.10 / 30)]


async def test_a_moment_answered_slower_than_a_share_is_left_unused_and_another_taken() -> None:
    """A slow commit answered every worker late at once: each waited out its moment
    from the late answer and their messages went together (32 in a second at the
    fake). A moment whose answer took longer than a share cannot be placed well
    enough to use."""
    clock = [100.0]
    share = 1.10 / 30

    class Slow:
        def __init__(self) -> None:
            self.calls = 0

        async def reserve(self, seconds: float) -> float:
            self.calls += 1
            # The first answer 200 ms after the ask, the second at once.
            clock[0] += 0.2 if self.calls == 1 else 0.001
            return 0.0

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    budget, opened = Slow(), asyncio.Event()
    gate = SharedGate(budget, share, opened.set, sleep, lambda: clock[0])
    assert gate.wait_time() > 0  # shut: a moment is being fetched
    async with asyncio.timeout(5):
        await opened.wait()
    assert (budget.calls, gate.uncertain) == (2, 1)
    assert gate.wait_time() == 0.0
    # An answer within a share is used as it comes.
    gate.charged(1, capped=True)
    opened.clear()
    gate.wait_time()
    async with asyncio.timeout(5):
        await opened.wait()
    assert (budget.calls, gate.uncertain) == (3, 1)
