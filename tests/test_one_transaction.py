"""One transaction per inbound event: state, journal, follow-ups and the processed
event id commit together or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import FollowUp, FollowUpRequest, StoreSession, UserKey
from storage import SqlStore
from tests.conftest import Chat, onboard
from tests.test_engine import walk_pause_to_move

USER = UserKey("test", "u1")


async def _journal_rows(store: SqlStore) -> list[tuple[str, str]]:
    from sqlalchemy import text

    async with store.engine.connect() as conn:
        rows = await conn.execute(text("select node_id, value from journal order by id"))
        return [(r[0], r[1]) for r in rows]


class FailingSession:
    """A real session whose follow-up insert fails, as a full disk would."""

    def __init__(self, inner: StoreSession) -> None:
        self._inner = inner

    # Any, not object: what it hands on is the real session's, typed there.
    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def schedule_followup(self, user: UserKey, request: FollowUpRequest) -> bool:
        raise OSError("disk full")


class FailingStore:
    """Passed to the engine through its store seam; breaks follow-up writes when armed."""

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        # Everything else (marking outbox rows, batches) is the real store's, typed there.
        return getattr(self.inner, name)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[StoreSession]:
        async with self.inner.session() as s:
            yield FailingSession(s) if self.armed else s

    async def claim_due(
        self, now: datetime, limit: int, platforms: Collection[str] | None = None
    ) -> list[FollowUp]:
        return await self.inner.claim_due(now, limit, platforms)

    async def next_due_at(self, platforms: Collection[str] | None = None) -> datetime | None:
        return await self.inner.next_due_at(platforms)


async def test_a_failure_late_in_an_event_rolls_back_everything_it_wrote(
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    failing = FailingStore(store)
    engine = Engine(
        content,
        failing,
        clock,
        safety_screen,
        lambda s, c: resource_text(resources, s, c),
    )
    chat = Chat(engine, clock=clock)
    await onboard(store, clock, chat.address)
    await walk_pause_to_move(chat)
    await chat.press("Settle and wait a set time")
    async with store.session() as s:
        before = await s.load_state(USER, clock.now())
    journal_before = await _journal_rows(store)
    button = chat.button("In 20 minutes")

    failing.armed = True
    out = await chat.send(choice=button.id)
    assert "something went wrong on my side" in out[0].text
    async with store.session() as s:
        after = await s.load_state(USER, clock.now())
        assert await s.pending_followups(USER) == []
    # The state change was rolled back with the failed insert (updated_at included).
    assert after == before
    assert await _journal_rows(store) == journal_before

    # The event id was not recorded, so the platform's redelivery is handled in full.
    failing.armed = False
    from dialogs.events import Inbound

    redelivered = Inbound(chat.address, "retry-1", clock.now(), choice=button.id)
    out = await engine.handle(redelivered)
    assert "Done, I'll check in at" in "\n".join(m.text for m in out)
    async with store.session() as s:
        assert len(await s.pending_followups(USER)) == 1


async def test_journal_holds_choices_and_ratings_but_no_free_text(
    chat: Chat, store: SqlStore
) -> None:
    from sqlalchemy import text

    await chat.command("pause")
    await chat.press("Done")
    await chat.press("7")
    await chat.press("Silence")
    await chat.press("Reach out more")
    await chat.press("It fits")
    await chat.press("Write a message to send later")
    await chat.say("my secret draft to him")
    async with store.engine.connect() as conn:
        mid_flow = str((await conn.execute(text("select * from conversations"))).all())
    await chat.press("No thanks")
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("select kind, value from journal order by id"))).all()
        dump = str((await conn.execute(text("select * from conversations"))).all())
    assert ("rating", "7") in rows and ("choice", "silence") in rows
    assert all("secret" not in value for _, value in rows)
    # No step reads the draft, so it was never stored, not even mid-flow.
    assert "secret" not in mid_flow
    assert "secret" not in dump
