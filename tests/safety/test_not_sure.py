"""A "Not sure" on the safety screen is treated with care: as a yes for everything that
keeps a person safe (the danger flag, the danger route, held-back messages, the gates
before reframes, reflection joining, follow-ups), with gentler words and no label."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.safety.gates import UNSAFE, gate_before
from dialogs.store import FollowUpRequest, FollowUpStatus, Profile, UserKey
from storage import SqlStore
from tests.conftest import Chat, onboard, texts
from tests.test_engine import RecordingSender

QUESTIONS = ("humiliated", "afraid", "forced", "hurt")
GENTLE = "Not being sure is answer enough"
USER = UserKey("test", "u1")


async def profile(store: SqlStore) -> Profile:
    async with store.session() as s:
        return await s.load_profile(USER)


async def plan(store: SqlStore, clock: ManualClock, flow_id: str, key: str) -> None:
    async with store.session() as s:
        due = clock.now() + timedelta(minutes=20)
        await s.schedule_followup(
            USER, FollowUpRequest(flow_id, "c1", due, due + timedelta(hours=6), key)
        )


async def statuses(store: SqlStore) -> list[FollowUpStatus]:
    async with store.session() as s:
        rows = await s.pending_followups(USER)
    return [r.status for r in rows]


async def screened_answering(chat: Chat, answer: str, question: int = 0) -> str:
    """/pause for someone never screened who looks closer: the questions come right
    before the check; "No" up to `question`, then `answer`."""
    out = await to_the_screen(chat)
    assert "four quick" in texts(out)
    for _ in range(question):
        await chat.press("No")
    assert [c.label for c in chat.buttons()] == ["Yes", "No", "Not sure"]
    return texts(await chat.press(answer))


async def to_the_screen(chat: Chat) -> list[Outbound]:
    await chat.command("pause")
    for label in ("Done", "7", "Silence", "Reach out more"):
        await chat.press(label)
    return await chat.press("Look at what's going on")


@pytest.fixture
async def unscreened(engine: Engine, clock: ManualClock, store: SqlStore) -> Chat:
    chat = Chat(engine, clock=clock)
    await onboard(store, clock, chat.address, screened=False)
    return chat


@pytest.mark.parametrize("question", range(len(QUESTIONS)))
async def test_not_sure_on_any_question_takes_the_gentle_danger_route(
    unscreened: Chat, store: SqlStore, question: int
) -> None:
    shown = await screened_answering(unscreened, "Not sure", question)
    # The first reply names someone to call, as on every danger path.
    assert GENTLE in shown and "911" in shown
    assert "Is it safe to keep chatting here?" in shown
    # Never as if they had named a fear.
    assert "afraid of a partner or someone at home" not in shown
    assert "activation" not in shown
    p = await profile(store)
    assert (p.screened, p.unsafe) == (True, True)
    out = await unscreened.press("It's safe to chat")
    assert "don't need to be sure" in texts(out)
    assert "Being afraid of a partner" not in texts(out)


async def test_a_typed_not_sure_counts_too(unscreened: Chat, store: SqlStore) -> None:
    await to_the_screen(unscreened)
    out = await unscreened.say("dunno")
    assert GENTLE in texts(out)
    assert (await profile(store)).unsafe is True


@pytest.mark.parametrize("answer", ["Yes", "Not sure"])
async def test_not_sure_is_as_careful_as_yes_everywhere_the_flag_is_read(
    unscreened: Chat,
    store: SqlStore,
    clock: ManualClock,
    engine: Engine,
    content: Content,
    answer: str,
) -> None:
    # Planned before the screen: a reminder to come back, and a daily check-in.
    await plan(store, clock, "space_return", "k1")
    await plan(store, clock, "checkin", "k2")
    await screened_answering(unscreened, answer, 1)
    # hold_messages: nothing planned arrives unasked on a screen someone may see.
    assert await statuses(store) == []
    p = await profile(store)
    assert (p.screened, p.unsafe) == (True, True)
    # The gates: every reframe waits behind the unsafe flow, reflection joining too.
    out = await unscreened.command("pause")
    assert "leaving out the relationship suggestions" in texts(out)
    assert "activation" not in texts(out)
    assert gate_before(content.flows["reflection_ready"], p) == UNSAFE
    assert gate_before(content.flows["role"], p) == UNSAFE
    # A push-pull follow-up asked for later is cancelled quietly when it comes due.
    await unscreened.command("stop")
    await plan(store, clock, "space_return", "k3")
    clock.advance(timedelta(minutes=21))
    sender = RecordingSender()
    assert await Dispatcher(store, engine, {"test": sender}, clock).run_due() == 1
    assert sender.sent == []
    # The same words lift it as for a yes: the person says they are safe, asked plainly.
    await unscreened.command("pause")
    await unscreened.press("I'm safe now")
    out = await unscreened.press("That's right, I'm safe")
    assert "pause for a minute" in texts(out)
    assert (await profile(store)).unsafe is False


async def test_not_sure_is_never_kept(unscreened: Chat, store: SqlStore) -> None:
    await screened_answering(unscreened, "Not sure", 2)
    async with store.engine.connect() as conn:
        rows = [tuple(r) for r in await conn.execute(sql("select flow_id, value from journal"))]
    assert all(flow != "screen" for flow, _ in rows)
    assert all(value != "unsure" for _, value in rows)
