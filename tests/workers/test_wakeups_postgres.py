"""Wake-ups between workers on PostgreSQL (storage/notify.py, bot/scheduler.py).

Worker B runs the real engine, dispatcher and scheduler with its periodic sweep an
hour long, so only a notification can explain it delivering promptly what worker A
(its own engine and connections) scheduled. B's listener is also killed on the
server (`pg_terminate_backend`) and must come back and catch up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from bot.scheduler import DispatchScheduler
from dialogs.clock import SystemClock
from dialogs.content import Content
from dialogs.delivery import Delivery
from dialogs.engine import Engine
from dialogs.events import Address, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import FollowUpRequest, Profile, UserKey
from storage import SqlStore, open_store
from storage.notify import PostgresWakeups
from tests.postgres import postgres_schema_url, test_postgres_url

# Long enough that a delivery in this test is never the sweep's.
HOUR = 3600.0
# Generous: a loaded machine is slow, but nothing here waits for the sweep.
ARRIVAL_TIMEOUT = 30.0


class Arrivals:
    """B's sender: who was sent something, awaitable."""

    def __init__(self) -> None:
        self.users: list[str] = []
        self._changed = asyncio.Event()

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.users.append(address.user_id)
        self._changed.set()

    async def wait_for(self, user_id: str) -> None:
        async with asyncio.timeout(ARRIVAL_TIMEOUT):
            while user_id not in self.users:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_schema_url() as schema_url:
        yield schema_url


@pytest.fixture
async def worker_a(url: str) -> AsyncIterator[SqlStore]:
    store = await open_store(url)
    yield store
    await store.close()


class WorkerB:
    def __init__(self, scheduler: DispatchScheduler, wakeups: PostgresWakeups) -> None:
        self.scheduler = scheduler
        self.wakeups = wakeups


@pytest.fixture
async def worker_b(
    url: str, content: Content, safety_screen: SafetyScreen, resources: SafetyResources
) -> AsyncIterator[tuple[WorkerB, Arrivals]]:
    clock = SystemClock()
    store = await open_store(url, clock=clock)
    engine = Engine(
        content, store, clock, safety_screen, lambda s, c: resource_text(resources, s, c)
    )
    arrivals = Arrivals()
    dispatcher = Dispatcher(store, engine, {"test": arrivals}, clock)
    # A retry longer than the test's steps, so a follow-up scheduled right after the
    # connection is killed is scheduled while nobody listens.
    wakeups = PostgresWakeups(url, retry_seconds=(3.0,))
    scheduler = DispatchScheduler(
        dispatcher, store, sweep_seconds=HOUR, clock=clock, wakeups=wakeups
    )
    await scheduler.start()
    try:
        yield WorkerB(scheduler, wakeups), arrivals
    finally:
        await scheduler.shutdown()
        await store.close()


async def schedule(store: SqlStore, name: str, due_at: datetime) -> None:
    user = UserKey("test", name)
    now = datetime.now(UTC)
    async with store.session() as session:
        # Real time at any hour: no quiet hours, or at night it would wait.
        await session.save_profile(
            user,
            Profile(
                consent_at=now, adult=True, screened=True, quiet_start="00:00", quiet_end="00:00"
            ),
        )
        await session.schedule_followup(
            user,
            FollowUpRequest("followup", name, due_at, due_at + timedelta(hours=1), f"k-{name}"),
        )


async def test_a_followup_scheduled_on_one_worker_is_dispatched_by_another_on_time(
    worker_a: SqlStore, worker_b: tuple[WorkerB, Any]
) -> None:
    _, arrivals = worker_b
    # Due a moment from now: B learns the due time from the notification and wakes
    # then (its first round, at start, found nothing).
    await schedule(worker_a, "soon", datetime.now(UTC) + timedelta(seconds=1))
    await arrivals.wait_for("soon")
    assert arrivals.users == ["soon"]


async def _kill_listener(b: WorkerB) -> None:
    pid = b.wakeups.backend_pid
    assert pid is not None
    conninfo = test_postgres_url().replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as admin:
        await admin.execute("select pg_terminate_backend(%s)", (pid,))
    async with asyncio.timeout(ARRIVAL_TIMEOUT):
        while b.wakeups.backend_pid == pid:  # noqa: ASYNC110 - the listener's own state
            await asyncio.sleep(0.01)


async def test_the_listener_comes_back_after_its_connection_is_killed(
    worker_a: SqlStore, worker_b: tuple[WorkerB, Any]
) -> None:
    b, arrivals = worker_b
    assert b.wakeups.connections == 1
    await _kill_listener(b)
    # Nobody listens now: this notification is lost, and the round B runs once it
    # listens again must find the row.
    await schedule(worker_a, "while-away", datetime.now(UTC))
    await arrivals.wait_for("while-away")
    assert b.wakeups.connections == 2
    # And it hears new ones again.
    await schedule(worker_a, "after", datetime.now(UTC) + timedelta(seconds=1))
    await arrivals.wait_for("after")
    assert arrivals.users == ["while-away", "after"]


async def test_rows_another_worker_cannot_send_are_sent_at_once_by_one_that_can(
    worker_a: SqlStore, worker_b: tuple[WorkerB, Any]
) -> None:
    _, arrivals = worker_b
    user = UserKey("test", "elsewhere")
    address = Address("test", "elsewhere", "elsewhere")
    now = datetime.now(UTC)
    async with worker_a.session() as session:
        rows = await session.enqueue_outbound(user, address, [Outbound("from A")], now)
    # A has no sender for this platform (a partner's message on another platform):
    # its delivery leaves the rows to a worker that has one, and says so.
    a_delivery = Delivery(worker_a, SystemClock(), interactive={}, scheduled={})
    report = await a_delivery.send(rows)
    assert report.left == 1
    await arrivals.wait_for("elsewhere")


@pytest.mark.parametrize("held", ["followup", "outbox row"])
async def test_what_a_stopping_worker_gives_back_is_taken_at_once_by_another(
    worker_a: SqlStore, worker_b: tuple[WorkerB, Any], held: str
) -> None:
    b, arrivals = worker_b
    rounds = Rounds(b.scheduler)
    due = datetime.now(UTC) + timedelta(seconds=1)
    if held == "followup":
        await schedule(worker_a, "of-a", due)
        # A claims it, as its dispatcher would at the due time.
        [claimed] = await worker_a.claim_due(due, 10, ["test"])
        assert claimed.user.user_id == "of-a"
    else:
        # A turn of A's wrote a reply it has not sent yet.
        async with worker_a.session() as session:
            await session.enqueue_outbound(
                UserKey("test", "of-a"), Address("test", "of-a", "of-a"), [Outbound("owed")], due
            )
    # B's round after the due time (a wake-up, or for the row none) finds nothing it
    # may take; then B idles (its sweep: an hour; the row's lease: 30 s).
    b.scheduler.notify(due)
    await rounds.wait_past(due)
    assert arrivals.users == []
    # A stops gracefully and gives it back: B takes it at once.
    released = await worker_a.release_claims(datetime.now(UTC))
    assert released == ((1, 0) if held == "followup" else (0, 1))
    await arrivals.wait_for("of-a")


class Rounds:
    """When B's dispatcher ran its rounds."""

    def __init__(self, scheduler: DispatchScheduler) -> None:
        dispatcher = scheduler._dispatcher
        self._run = dispatcher.run_due
        self.ended: list[datetime] = []
        self._changed = asyncio.Event()
        dispatcher.run_due = self._counted  # type: ignore[method-assign]

    async def _counted(self) -> int:
        began = datetime.now(UTC)
        try:
            return await self._run()
        finally:
            self.ended.append(began)
            self._changed.set()

    async def wait_past(self, moment: datetime) -> None:
        """Until a round that began after `moment` has ended."""
        async with asyncio.timeout(ARRIVAL_TIMEOUT):
            while not any(began >= moment for began in self.ended):
                self._changed.clear()
                await self._changed.wait()
