"""Answers do not outlive a facilitator's /forget (issue 16, item 6)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select

from dialogs.clock import ManualClock
from dialogs.reflection.store import ReflectionAnswer
from dialogs.store import UserKey
from storage import SqlStore
from storage.models import ReflectionAnswerRow

MOD = UserKey("telegram", "mod")
ANN = UserKey("telegram", "ann")
BEN = UserKey("telegram", "ben")


async def answers(store: SqlStore) -> list[tuple[int | None, bool, str]]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(
                ReflectionAnswerRow.session_id,
                ReflectionAnswerRow.saved,
                ReflectionAnswerRow.step_id,
            ).order_by(ReflectionAnswerRow.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_a_facilitators_forget_takes_the_unsaved_answers_with_the_session(
    store: SqlStore, clock: ManualClock
) -> None:
    now = clock.now()
    async with store.session() as session:
        reflection = await session.create_reflection(
            token="tok", platform="telegram", chat_id="-1", reflection_id="noticing",
            facilitator=MOD, minutes=3, at=now,
        )  # fmt: skip
        for person, saved in ((ANN, True), (BEN, False)):
            await session.add_participant(reflection.id, person, person.user_id, now)
            await session.save_answer(
                reflection.id,
                ReflectionAnswer(
                    person, f"step-{person.user_id}", "a", None, None, False, saved, now
                ),
            )
    async with store.session() as session:
        await session.forget_user(MOD)
    # Ben's unsaved answer went with the session; Ann's saved one is hers to keep.
    assert await answers(store) == [(None, True, "step-ann")]


async def test_the_purge_finds_orphaned_answers(store: SqlStore, clock: ManualClock) -> None:
    """Unsaved answers left unlinked by earlier versions (or by a connection without
    foreign keys) are purged; saved ones stay."""
    now = clock.now()
    async with store.engine.begin() as connection:
        for saved, step in ((False, "orphan"), (True, "kept")):
            await connection.execute(
                insert(ReflectionAnswerRow).values(
                    session_id=None, member="x" * 64, reflection_id="noticing", step_id=step,
                    choice="a", saved=saved, at=now,
                )
            )  # fmt: skip
    deleted = await store.purge_reflections(now + timedelta(days=8), timedelta(days=7))
    assert deleted == 1
    assert await answers(store) == [(None, True, "kept")]
    async with store.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(ReflectionAnswerRow)) == 1


async def test_a_reflection_moved_to_a_thread_is_found_from_where_it_started(
    store: SqlStore, clock: ManualClock
) -> None:
    """Discord moves a reflection to a thread; `/reflect end` typed in the channel
    must still find it, though Discord may have archived the thread (issue 15)."""
    from dataclasses import replace

    now = clock.now()
    async with store.session() as session:
        moved = await session.create_reflection(
            token="moved", platform="discord", chat_id="channel", reflection_id="noticing",
            facilitator=MOD, minutes=3, at=now,
        )  # fmt: skip
        await session.update_reflection(replace(moved, chat_id="thread"))
    async with store.session() as session:
        found = await session.open_reflection_in("discord", "channel")
        assert found is not None and (found.token, found.chat_id) == ("moved", "thread")
        in_thread = await session.open_reflection_in("discord", "thread")
        assert in_thread is not None and in_thread.token == "moved"
        assert await session.open_reflection_in("telegram", "channel") is None
        # One running in the channel itself is the one asked about there.
        await session.create_reflection(
            token="here", platform="discord", chat_id="channel", reflection_id="noticing",
            facilitator=MOD, minutes=3, at=now,
        )  # fmt: skip
        here = await session.open_reflection_in("discord", "channel")
        assert here is not None and here.token == "here"
