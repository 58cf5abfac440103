"""bot.person_queue: per-person order, the burst cap, urgent events first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from bot.person_queue import Admission, PersonQueue, is_urgent
from dialogs.events import Address, Command, Inbound
from dialogs.safety.screen import SafetyScreen

ADDRESS = Address("test", "u1", "u1")
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def recorder(
    log: list[str], name: str, gate: asyncio.Event | None = None
) -> Callable[[], Awaitable[None]]:
    async def work() -> None:
        log.append(f"start {name}")
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0)
        log.append(f"end {name}")

    return work


async def test_one_person_in_order_and_others_alongside() -> None:
    queue: PersonQueue[str] = PersonQueue()
    log: list[str] = []
    gate = asyncio.Event()
    first = asyncio.create_task(queue.run("a", recorder(log, "a1", gate)))
    second = asyncio.create_task(queue.run("a", recorder(log, "a2")))
    other = asyncio.create_task(queue.run("b", recorder(log, "b1")))
    await other  # b is not held up by a's first event
    assert log == ["start a1", "start b1", "end b1"]
    gate.set()
    assert await first is Admission.ACCEPTED and await second is Admission.ACCEPTED
    assert log[3:] == ["end a1", "start a2", "end a2"]
    assert len(queue) == 2  # recent arrivals are remembered for the window


async def test_a_burst_past_the_cap_is_dropped_with_one_notice_per_window() -> None:
    clock = Clock()
    queue: PersonQueue[str] = PersonQueue(burst=3, window=10, now=clock)
    log: list[str] = []
    admissions = [await queue.run("a", recorder(log, str(n))) for n in range(6)]
    assert admissions == [Admission.ACCEPTED] * 3 + [
        Admission.DROPPED_NOTICE,
        Admission.DROPPED,
        Admission.DROPPED,
    ]
    assert len(log) == 6  # three ran, start and end
    clock.t += 10.5
    assert await queue.run("a", recorder(log, "later")) is Admission.ACCEPTED
    assert queue.dropped == 3


async def test_urgent_events_go_first_and_are_never_capped() -> None:
    clock = Clock()
    queue: PersonQueue[str] = PersonQueue(burst=3, window=10, max_urgent=2, now=clock)
    log: list[str] = []
    gate = asyncio.Event()
    running = asyncio.create_task(queue.run("a", recorder(log, "n0", gate)))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(queue.run("a", recorder(log, f"n{n}"))) for n in (1, 2)]
    await asyncio.sleep(0)
    # Past the cap for ordinary events...
    assert queue.admit("a") is Admission.DROPPED_NOTICE
    # ...but a safety signal is taken, and goes ahead of n1 and n2.
    urgent = [
        asyncio.create_task(queue.run("a", recorder(log, f"sos{n}"), urgent=True)) for n in (1, 2)
    ]
    await asyncio.sleep(0)
    # A third urgent one while two wait: coalesced (those two answer with the flow).
    assert await queue.run("a", recorder(log, "sos3"), urgent=True) is Admission.COALESCED
    gate.set()
    await asyncio.gather(running, *waiting, *urgent)
    starts = [entry.split()[1] for entry in log if entry.startswith("start")]
    assert starts == ["n0", "sos1", "sos2", "n1", "n2"]


async def test_a_cancelled_waiter_passes_the_turn_on() -> None:
    queue: PersonQueue[str] = PersonQueue()
    log: list[str] = []
    gate = asyncio.Event()
    first = asyncio.create_task(queue.run("a", recorder(log, "1", gate)))
    await asyncio.sleep(0)
    second = asyncio.create_task(queue.run("a", recorder(log, "2")))
    third = asyncio.create_task(queue.run("a", recorder(log, "3")))
    await asyncio.sleep(0)
    second.cancel()
    gate.set()
    await first
    await third
    assert "start 2" not in log and "end 3" in log
    with pytest.raises(asyncio.CancelledError):
        await second


async def test_slots_bound_the_work_running_at_once_after_each_persons_turn() -> None:
    queue: PersonQueue[int] = PersonQueue(slots=2)
    running = 0
    peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1

    await asyncio.gather(*(queue.run(n % 5, work) for n in range(20)))
    assert peak == 2


async def test_idle_lines_are_pruned() -> None:
    clock = Clock()
    queue: PersonQueue[int] = PersonQueue(window=10, now=clock)
    for person in range(300):
        await queue.run(person, recorder([], "x"))
    clock.t += 11
    for person in range(300, 600):
        await queue.run(person, recorder([], "x"))
    assert len(queue) <= 300


def test_what_is_urgent(safety_screen: SafetyScreen) -> None:
    def inbound(**what: object) -> Inbound:
        return Inbound(ADDRESS, "e", T0, **what)  # type: ignore[arg-type]

    assert is_urgent(inbound(command=Command("sos")), safety_screen)
    assert is_urgent(inbound(command=Command("SOS")), safety_screen)
    assert is_urgent(inbound(choice="/sos"), safety_screen)
    assert is_urgent(inbound(text="I want to kill myself"), safety_screen)
    assert is_urgent(inbound(command=Command("pause", ("i want to die",))), safety_screen)
    assert not is_urgent(inbound(text="he went quiet again"), safety_screen)
    assert not is_urgent(inbound(command=Command("pause")), safety_screen)
    assert not is_urgent(inbound(choice="pause:start:a:1"), safety_screen)
    assert not is_urgent(inbound(text="I want to kill myself"), None)
