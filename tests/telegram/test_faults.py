"""Flood control and network trouble: replies are late, never lost."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from tests.telegram.conftest import Harness

PEOPLE = [4401, 4402, 4403, 4404, 4405]


async def test_a_429_storm_loses_no_reply(tg: Harness) -> None:
    for user_id in PEOPLE:
        await tg.onboard(user_id)
    # Twelve refusals in a row, across every send method, each asking for 0.2 s.
    tg.fake.fail(429, times=12, retry_after=0.2)
    people = [tg.person(user_id) for user_id in PEOPLE]
    for person in people:
        tg.fake.push_message(person.user_id, "/pause")
    await tg.fake.wait_for(
        lambda: all(
            any("Breathe in" in m.get("text", "") for m in person.seen()) for person in people
        ),
        within=15,
    )
    assert len([c for c in tg.fake.calls if c.status == 429]) == 12
    for person in people:
        # The step's two paragraphs, in one message.
        [reply] = person.seen()
        assert reply["text"].startswith("Let's pause for a minute")
        assert "\n\nBreathe in through your nose" in reply["text"]
    # The storm is over and the buttons work.
    await people[0].press("Done", until="How loud")


async def test_a_429_outlasting_the_limiter_is_handed_on_without_a_traceback(
    tg: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await tg.onboard(PEOPLE[0])
    me = tg.person(PEOPLE[0])
    # One call refused more often than PTB's limiter retries (3): it gives up, and
    # the call's own loop waits on (bot/telegram/retry.py).
    tg.fake.fail(429, methods=["sendMessage"], times=5, retry_after=0.1)
    out = await me.say("/pause", until="Breathe in")
    assert [m["text"][:12] for m in out] == ["Let's pause "]
    # A hand-over, said as a warning; no error, no traceback (the soak fails on one).
    handed_on = [r for r in caplog.records if "Rate limit hit after maximum" in r.getMessage()]
    assert handed_on and all(r.levelno == logging.WARNING for r in handed_on)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_server_errors_slow_answers_and_dropped_connections_are_retried(
    tg: Harness,
) -> None:
    await tg.onboard(PEOPLE[0])
    me = tg.person(PEOPLE[0])
    tg.fake.fail(502, methods=["sendMessage"], times=1)
    tg.fake.fail(500, methods=["sendMessage"], times=1)
    tg.fake.drop(methods=["sendMessage"], times=1)
    tg.fake.slow(0.3, methods=["sendMessage"], times=1)
    out = await me.say("/pause", until="Breathe in")
    # The reply arrives exactly once.
    assert [m["text"][:12] for m in out] == ["Let's pause "]
    statuses = [c.status for c in tg.fake.calls if c.method == "sendMessage"]
    assert statuses == [502, 500, 0, 200]  # 0: the dropped connection


async def test_a_reply_that_outlasts_the_retries_is_sent_by_the_sweep_not_lost(
    tg: Harness,
) -> None:
    await tg.onboard(PEOPLE[0])
    me = tg.person(PEOPLE[0])
    # Four network failures use up all four attempts of the reply.
    tg.fake.fail(503, methods=["sendMessage"], times=4)
    tg.fake.push_message(me.user_id, "/pause")
    await tg.fake.wait_for(
        lambda: len([c for c in tg.fake.calls if c.method == "sendMessage"]) == 4
    )
    assert me.seen() == []
    # The fourth failure reached the fake; the send gives the row up a moment later.
    async with asyncio.timeout(4):
        while tg.guide.delivery.held:  # noqa: ASYNC110 - the delivery's own state
            await asyncio.sleep(0.01)
    # The reply is still owed (a pending row), so the sweep sends it once its sender
    # has had the lease: late, never lost, and no apology in its place.
    tg.clock.advance(timedelta(seconds=31))
    assert await tg.guide.delivery.resend_unsent() >= 1
    out = await me.replies_after(0, "Breathe in")
    assert "Sorry" not in texts(out)
    statuses = [c.status for c in tg.fake.calls if c.method == "sendMessage"]
    assert statuses[:4] == [503] * 4 and set(statuses[4:]) == {200}


def texts(messages: list[dict[str, object]]) -> str:
    return "\n".join(str(m.get("text", "")) for m in messages)
