"""SQLite's one writer, queued in the process (storage.write_lock): a person's
transaction goes before waiting background work, each priority is first come first
served, and a waiter that gives up never keeps the lock from the others."""

from __future__ import annotations

import asyncio

from storage.write_lock import WriteLock


async def settle() -> None:
    """Let every runnable task run until each waits again."""
    for _ in range(5):
        await asyncio.sleep(0)


def taker(lock: WriteLock, order: list[str], name: str, *, background: bool) -> asyncio.Task[None]:
    async def take() -> None:
        async with lock.hold(background=background):
            order.append(name)
            await asyncio.sleep(0)  # hold it across a switch, as a transaction does

    return asyncio.create_task(take(), name=name)


async def test_a_free_lock_is_taken_at_once_and_freed_after() -> None:
    lock = WriteLock()
    async with lock.hold(background=True):
        pass
    async with lock.hold():
        assert not lock.urgent_waiting
    # Free again: taken without waiting (no task switch needed).
    entered = False

    async def enter() -> None:
        nonlocal entered
        async with lock.hold():
            entered = True

    await asyncio.wait_for(enter(), 1)
    assert entered


async def test_a_persons_transaction_goes_before_earlier_background_waiters() -> None:
    lock = WriteLock()
    order: list[str] = []
    async with lock.hold(background=True):  # a wave's batch holds the lock
        waiting = [taker(lock, order, "marks", background=True)]
        await settle()
        waiting.append(taker(lock, order, "sweep", background=True))
        await settle()
        waiting.append(taker(lock, order, "a reply", background=False))
        await settle()
        assert order == []  # nobody got in while the batch held it
    await asyncio.gather(*waiting)
    assert order == ["a reply", "marks", "sweep"]


async def test_first_come_first_served_within_each_priority() -> None:
    lock = WriteLock()
    order: list[str] = []
    arrivals = [
        ("b1", True),
        ("p1", False),
        ("b2", True),
        ("p2", False),
        ("b3", True),
        ("p3", False),
    ]
    async with lock.hold():
        waiting = []
        for name, background in arrivals:
            waiting.append(taker(lock, order, name, background=background))
            await settle()  # arrive one after another
    await asyncio.gather(*waiting)
    assert order == ["p1", "p2", "p3", "b1", "b2", "b3"]


async def test_a_person_arriving_while_background_work_queues_still_goes_next() -> None:
    lock = WriteLock()
    order: list[str] = []
    async with lock.hold(background=True):
        waiting = [taker(lock, order, f"b{n}", background=True) for n in range(3)]
        await settle()
    # The lock went to b0 on release; a person arrives while b0 holds it.
    waiting.append(taker(lock, order, "a reply", background=False))
    await asyncio.gather(*waiting)
    assert order == ["b0", "a reply", "b1", "b2"]


async def test_urgent_waiting_says_whether_a_person_waits() -> None:
    lock = WriteLock()
    order: list[str] = []
    assert not lock.urgent_waiting
    async with lock.hold(background=True):
        background = taker(lock, order, "sweep", background=True)
        await settle()
        assert not lock.urgent_waiting  # background work waiting does not count
        person = taker(lock, order, "a reply", background=False)
        await settle()
        assert lock.urgent_waiting
    await person
    assert not lock.urgent_waiting  # it holds the lock now, it is not waiting
    await background
    assert not lock.urgent_waiting


async def test_a_waiter_cancelled_while_waiting_leaves_the_lock_to_the_next() -> None:
    lock = WriteLock()
    order: list[str] = []
    async with lock.hold(background=True):
        gone = taker(lock, order, "gives up", background=False)
        await settle()
        assert lock.urgent_waiting
        after = taker(lock, order, "next", background=True)
        await settle()
        gone.cancel()
        await settle()
        assert gone.cancelled()
        assert not lock.urgent_waiting  # the one who gave up is no longer counted
    await asyncio.wait_for(after, 1)
    assert order == ["next"]
    await asyncio.wait_for(taker(lock, order, "later", background=False), 1)
    assert order == ["next", "later"]


async def test_a_waiter_cancelled_just_as_the_lock_is_handed_to_it_passes_it_on() -> None:
    lock = WriteLock()
    order: list[str] = []
    async with lock.hold(background=True):
        unlucky = taker(lock, order, "unlucky", background=False)
        await settle()
        after = taker(lock, order, "next", background=True)
        await settle()
    # Leaving `hold` handed the lock to `unlucky` (its turn granted) without a task
    # switch; cancelled before it runs again, it must pass the lock on, not keep it.
    unlucky.cancel()
    await asyncio.wait_for(after, 1)
    assert unlucky.cancelled()
    assert order == ["next"]
    await asyncio.wait_for(taker(lock, order, "later", background=True), 1)
    assert order == ["next", "later"]
    assert not lock.urgent_waiting
