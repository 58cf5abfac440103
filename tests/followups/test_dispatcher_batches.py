"""A wave renders due follow-ups in batches, one transaction each, holding SQLite's
one writer: a batch commits early when a person's transaction waits
(`Store.someone_waiting`), carries the follow-ups it did not reach into the next
batch, and every follow-up is still handled exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from itertools import cycle

import pytest
from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.due import DueOutcome
from dialogs.engine import Engine
from dialogs.events import Address, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.store import FollowUp, FollowUpRequest, UserKey
from storage import SqlStore
from tests.conftest import onboard
from tests.test_delivery import Recorder

# Long enough that a loaded machine never ends a batch on time in these tests.
NO_TIME_LIMIT = 600.0


async def due_followups(store: SqlStore, clock: ManualClock, n: int, tag: str) -> list[str]:
    chats = []
    for i in range(n):
        person = Address("test", f"{tag}{i}", f"{tag}{i}")
        await onboard(store, clock, person)
        async with store.session() as s:
            await s.schedule_followup(
                UserKey("test", person.user_id),
                FollowUpRequest(
                    "followup",
                    person.chat_id,
                    clock.now(),
                    clock.now() + timedelta(hours=1),
                    f"{tag}-{i}",
                ),
            )
        chats.append(person.chat_id)
    return chats


async def statuses(store: SqlStore) -> Counter[str]:
    async with store.engine.connect() as conn:
        return Counter(r[0] for r in await conn.execute(sql("select status from followups")))


class Counting:
    """Counts the batches the dispatcher opens and the claims it makes."""

    def __init__(self, store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches = 0
        self.claims = 0
        # The most each claim could take.
        self.limits: list[int] = []
        real_batch, real_claim = store.batch, store.claim_due

        @asynccontextmanager
        async def batch() -> AsyncIterator[None]:
            self.batches += 1
            async with real_batch():
                yield

        async def claim_due(*args: object, **kwargs: object) -> list[FollowUp]:
            self.claims += 1
            self.limits.append(int(args[1]))  # type: ignore[call-overload]
            return await real_claim(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "batch", batch)
        monkeypatch.setattr(store, "claim_due", claim_due)


def scripted(answers: Iterator[bool]) -> Callable[[], bool]:
    return lambda: next(answers)


async def test_nobody_waiting_one_batch_renders_the_whole_claim(
    engine: Engine, store: SqlStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    chats = await due_followups(store, clock, 5, "a")
    counting = Counting(store, monkeypatch)
    monkeypatch.setattr(store, "someone_waiting", lambda: False)
    sender = Recorder()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock, batch_seconds=NO_TIME_LIMIT)
    assert await dispatcher.run_due() == 5
    assert counting.batches == 1
    assert sorted(c for c, _ in sender.calls) == sorted(chats)


async def test_a_batch_stops_when_someone_waits_and_the_rest_is_handled_exactly_once(
    engine: Engine, store: SqlStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    chats = await due_followups(store, clock, 7, "b")
    counting = Counting(store, monkeypatch)
    # Someone waits at every second check: batches of two follow-ups.
    monkeypatch.setattr(store, "someone_waiting", scripted(cycle([False, True])))
    sender = Recorder()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock, batch_seconds=NO_TIME_LIMIT)
    assert await dispatcher.run_due() == 7
    assert counting.batches == 4  # 2 + 2 + 2 + 1
    assert counting.claims == 2  # one claim; the carried rest is not claimed again
    # Each person got their follow-up once, and every row says so.
    assert Counter(c for c, _ in sender.calls) == Counter(chats)
    assert all(texts for _, texts in sender.calls)
    assert await statuses(store) == Counter({"sent": 7})
    # Nothing is left for a later round.
    assert await dispatcher.run_due() == 0
    assert len(sender.calls) == 7


async def test_a_claim_takes_no_more_than_the_last_batch_rendered(
    engine: Engine, store: SqlStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claimed rows nobody renders yet would wait on this worker while other workers
    are idle, and past a short lease: after a batch was cut short, a claim takes what
    it rendered."""
    chats = await due_followups(store, clock, 30, "g")
    counting = Counting(store, monkeypatch)
    # Someone waits at every second check: batches of two follow-ups.
    monkeypatch.setattr(store, "someone_waiting", scripted(cycle([False, True])))
    sender = Recorder()
    dispatcher = Dispatcher(
        store, engine, {"test": sender}, clock, batch_size=80, batch_seconds=NO_TIME_LIMIT
    )
    assert await dispatcher.run_due() == 30
    assert counting.limits[0] == 10  # an eighth of the batch size, before anything rendered
    # A claim of two renders whole, so the next may take twice that, and be cut again.
    assert counting.limits[1:] and all(limit <= 4 for limit in counting.limits[1:])
    assert Counter(c for c, _ in sender.calls) == Counter(chats)
    assert await statuses(store) == Counter({"sent": 30})


async def test_claims_grow_while_batches_render_all_they_are_given(
    engine: Engine, store: SqlStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    chats = await due_followups(store, clock, 30, "h")
    counting = Counting(store, monkeypatch)
    monkeypatch.setattr(store, "someone_waiting", lambda: False)
    sender = Recorder()
    dispatcher = Dispatcher(
        store, engine, {"test": sender}, clock, batch_size=80, batch_seconds=NO_TIME_LIMIT
    )
    assert await dispatcher.run_due() == 30
    # 10 + 20 are all that is due; the third claim finds nothing.
    assert counting.limits == [10, 20, 40]
    assert Counter(c for c, _ in sender.calls) == Counter(chats)


async def test_a_person_waiting_always_still_gets_the_wave_through(
    engine: Engine, store: SqlStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    chats = await due_followups(store, clock, 4, "c")
    counting = Counting(store, monkeypatch)
    monkeypatch.setattr(store, "someone_waiting", lambda: True)
    sender = Recorder()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock, batch_seconds=NO_TIME_LIMIT)
    assert await dispatcher.run_due() == 4
    assert counting.batches == 4  # each batch renders at least one follow-up
    assert Counter(c for c, _ in sender.calls) == Counter(chats)
    assert await statuses(store) == Counter({"sent": 4})


# SQLite's one writer in this process (storage.write_lock); PostgreSQL has no such lock
# (someone_waiting is always False there) and takes row locks instead.
@pytest.mark.backends("sqlite")
async def test_a_persons_turn_gets_in_between_two_batches_of_a_wave(
    engine: Engine, store: SqlStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the real write lock: a person's transaction that starts while a batch
    renders commits before the rest of the wave is rendered, and before background
    work that was waiting already."""
    chats = await due_followups(store, clock, 4, "d")
    someone = Address("test", "someone", "someone")
    await onboard(store, clock, someone)
    order: list[str] = []
    real_start_due = engine.start_due
    others: list[asyncio.Task[None]] = []

    async def a_sweep() -> None:
        await store.next_due_at()  # a background transaction
        order.append("a sweep")

    async def a_persons_turn() -> None:
        async with store.session() as s:
            await s.load_profile(UserKey("test", someone.user_id))
            order.append("a person's turn")

    async def start_due(followup: FollowUp) -> DueOutcome:
        order.append(f"follow-up {followup.chat_id}")
        if not others:
            for work in (a_sweep, a_persons_turn):  # the sweep queues first
                others.append(asyncio.create_task(work()))
                for _ in range(5):
                    await asyncio.sleep(0)  # it reaches the write lock and waits
            assert store.someone_waiting()
        return await real_start_due(followup)

    monkeypatch.setattr(engine, "start_due", start_due)
    sender = Recorder()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock, batch_seconds=NO_TIME_LIMIT)
    assert await dispatcher.run_due() == 4
    await asyncio.gather(*others)
    assert order == [
        f"follow-up {chats[0]}",
        "a person's turn",
        "a sweep",
        *(f"follow-up {c}" for c in chats[1:]),
    ]
    assert Counter(c for c, _ in sender.calls) == Counter(chats)
    assert await statuses(store) == Counter({"sent": 4})


async def test_rows_given_back_mid_wave_go_between_batches_not_after_the_wave(
    engine: Engine, store: SqlStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wave behind its due times keeps one round busy for minutes. A reply another
    worker left when it died (given back to nobody: `release_outbound`, as the
    liveness takeover does) must not wait for the wave's end: by then the person has
    moved on and it would be superseded. The round sweeps between two batches."""
    chats = await due_followups(store, clock, 12, "w")
    owed = Address("test", "late", "late-chat")
    # Batches of two: someone waits at every second check.
    monkeypatch.setattr(store, "someone_waiting", scripted(cycle([False, True])))
    sender = Recorder()
    ticks = iter(range(1_000_000))
    dispatcher = Dispatcher(
        store,
        engine,
        {"test": sender},
        clock,
        # Claims of two at first: the wave takes several.
        batch_size=16,
        batch_seconds=NO_TIME_LIMIT,
        monotonic=lambda: float(next(ticks)),
    )
    real_claim = store.claim_due
    claims = 0

    async def claim_due(*args: object, **kwargs: object) -> list[FollowUp]:
        nonlocal claims
        claims += 1
        if claims == 2:
            # Mid-wave: a dead worker's reply is given back, and the takeover asks.
            async with store.session() as s:
                [row] = await s.enqueue_outbound(
                    UserKey("test", "late"), owed, [Outbound("your reply")], clock.now()
                )
            await store.release_outbound([row.id], "worker died", clock.now())
            dispatcher.want_resend()
        return await real_claim(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "claim_due", claim_due)
    assert await dispatcher.run_due() == 12
    order = [chat for chat, _ in sender.calls]
    assert "late-chat" in order
    # Sent while most of the wave was still to go, not after it.
    assert order.index("late-chat") < len(order) - 6, order
    assert Counter(c for c in order if c != "late-chat") == Counter(chats)
