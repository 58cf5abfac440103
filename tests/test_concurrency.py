"""Concurrent events on one store apply one after another: nothing lost, no errors."""

from __future__ import annotations

import asyncio

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.events import Address, Command, Inbound
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import ConversationState, UserKey
from storage import SqlStore, open_store
from tests.conftest import Chat, make_engine, onboard


async def test_concurrent_read_modify_write_loses_nothing(store_url: str) -> None:
    store = await open_store(store_url, clock=ManualClock())
    user = UserKey("test", "same-person")
    now = ManualClock().now()

    async def bump() -> None:
        async with store.session() as s:
            state = await s.load_state(user, now)
            await asyncio.sleep(0)  # give every other task the chance to interleave
            count = int(state.variables.get("n", 0))
            await s.save_state(user, ConversationState("f", "s", {"n": count + 1}), now)

    try:
        await asyncio.gather(*(bump() for _ in range(25)))
        async with store.session() as s:
            assert (await s.load_state(user, now)).variables["n"] == 25
    finally:
        await store.close()


async def test_a_burst_of_events_from_one_person_all_get_answers(chat: Chat) -> None:
    await chat.command("pause")
    replies = await asyncio.gather(*(chat.say("hello?") for _ in range(10)))
    assert all(r and "went wrong" not in r[0].text for r in replies)


async def test_two_workers_turns_for_one_person_never_overwrite_each_other(
    store_url: str,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    """Two stores on one database are two workers (any worker takes any update): one
    person's events at the same moment on both apply one after another, each starting
    from what the other committed. Each /pause presents a step, counted in the state."""
    clock = ManualClock()
    workers = [await open_store(store_url, clock=clock) for _ in range(2)]
    engines = [make_engine(content, s, clock, safety_screen, resources) for s in workers]
    person = Address("test", "same-person", "c1", True)
    try:
        await onboard(workers[0], clock, person)
        before = await turn_of(workers[0], person)
        events = [
            engines[n % 2].handle(Inbound(person, f"e{n}", clock.now(), command=Command("pause")))
            for n in range(20)
        ]
        replies = await asyncio.gather(*events)
        assert all(r and "went wrong" not in r[0].text for r in replies)
        assert await turn_of(workers[1], person) == before + 20
    finally:
        for each in workers:
            await each.close()


async def turn_of(store: SqlStore, person: Address) -> int:
    async with store.session() as s:
        state = await s.load_state(UserKey(person.platform, person.user_id), ManualClock().now())
    return state.turn
