"""The daily purge of group-reflection answers, as `pausecheck run` wires it: the
settings' retention (`PAUSECHECK_REFLECTION_RETENTION_DAYS`), the scheduler's daily
job, and the store's purge. Unsaved answers go that many days after the session
ended; saved ones stay with their author."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import open_guide
from bot.config import Settings
from dialogs.clock import ManualClock
from dialogs.reflection.store import ReflectionAnswer, ReflectionStatus
from dialogs.store import UserKey
from storage import SqlStore
from storage.models import ReflectionAnswerRow

MOD = UserKey("test", "mod")
ANN = UserKey("test", "ann")
BEN = UserKey("test", "ben")
DAYS = 3  # not the default of 7: the setting must reach the purge


async def answers(store: SqlStore) -> list[tuple[str, bool]]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(ReflectionAnswerRow.step_id, ReflectionAnswerRow.saved).order_by(
                ReflectionAnswerRow.id
            )
        )
        return [(step, saved) for step, saved in rows]


async def ended_reflection(store: SqlStore, clock: ManualClock) -> None:
    """A session that ended now: ann saved her answer, ben did not."""
    now = clock.now()
    async with store.session() as session:
        reflection = await session.create_reflection(
            token="retention", platform="test", chat_id="g1", reflection_id="noticing",
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
        await session.update_reflection(
            replace(reflection, status=ReflectionStatus.ENDED, ended_at=now)
        )


async def test_the_daily_job_purges_unsaved_answers_after_the_configured_days(
    monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    monkeypatch.delenv("PAUSECHECK_REFLECTION_RETENTION_DAYS", raising=False)
    clock = ManualClock()
    settings = Settings(
        _env_file=None,
        database_url=store_url,
        timezone="Europe/London",
        reflection_retention_days=DAYS,
    )
    guide = await open_guide(settings, clock)
    try:
        await ended_reflection(guide.store, clock)
        await guide.scheduler.start()
        # The purge runs as a job every day, besides once at start.
        job = guide.scheduler._scheduler.get_job("purge")
        assert job is not None and job.trigger.interval == timedelta(days=1)

        clock.advance(timedelta(days=DAYS, hours=-1))
        await job.func()
        assert await answers(guide.store) == [("step-ann", True), ("step-ben", False)]

        clock.advance(timedelta(hours=2))
        await job.func()
        assert await answers(guide.store) == [("step-ann", True)]
    finally:
        await guide.close()
