"""Flood control and network trouble: replies are late, never lost."""

from __future__ import annotations

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
        assert [m["text"][:20] for m in person.seen()] == [
            "Let's pause for a mi",
            "Breathe in through y",
        ]
    # The storm is over and the buttons work.
    await people[0].press("Done", until="How loud")


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
    # Each message arrives exactly once, in order.
    assert [m["text"][:12] for m in out] == ["Let's pause ", "Breathe in t"]
    statuses = [c.status for c in tg.fake.calls if c.method == "sendMessage"]
    assert statuses == [502, 500, 0, 200, 200]  # 0: the dropped connection


async def test_outage_longer_than_the_retries_gets_an_apology_once_it_is_back(
    tg: Harness,
) -> None:
    await tg.onboard(PEOPLE[0])
    me = tg.person(PEOPLE[0])
    # Four network failures use up all four attempts of the first message.
    tg.fake.fail(503, methods=["sendMessage"], times=4)
    out = await me.say("/pause", until="Sorry, something went wrong")
    assert out[-1]["text"].startswith("Sorry")
    assert [c.status for c in tg.fake.calls if c.method == "sendMessage"] == [503] * 4 + [200]
