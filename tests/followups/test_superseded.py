"""A stored message is not sent again once the person's conversation has moved on
since it was rendered (issue 15, item 2): the resend sweep, and a later send that
sends what was owed before it, record it superseded ("conversation moved on")
instead. Real engine and store (SQLite; the store-level test on PostgreSQL too), a
manual clock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.delivery import Delivery
from dialogs.engine import Engine
from dialogs.events import Address, Outbound
from dialogs.store import ConversationState, OutboundKind, UserKey
from storage import SqlStore
from tests.conftest import Chat, texts
from tests.followups.test_guarantees import ShuttingDownSender, dispatcher
from tests.test_delivery import ALICE, owe
from tests.test_delivery_order import Platform
from tests.test_engine import RecordingSender, ask_for_followup_in_20_minutes

CHECKING_IN = "checking in like you asked"


async def rows(store: SqlStore) -> list[tuple[str, str, str | None, int | None, int | None]]:
    """(kind, status, reason, turn, follow-up id) of every outbox row, in order."""
    async with store.engine.connect() as connection:
        found = await connection.execute(
            sql("select kind, status, reason, turn, followup_id from outbound order by id")
        )
        return [tuple(r) for r in found]


async def everything_so_far_was_sent(store: SqlStore) -> None:
    """The chat helper drives the engine only: its replies count as delivered (and
    are left out of what the tests look at)."""
    async with store.engine.begin() as connection:
        await connection.execute(sql("delete from outbound"))


async def a_followup_committed_and_never_sent(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    await everything_so_far_was_sent(store)
    clock.advance(timedelta(minutes=20))
    # The process stops between commit and send: the follow-up is done, its
    # message owed by the outbox.
    await dispatcher(store, engine, clock, ShuttingDownSender()).run_due()
    [(kind, status, _, turn, followup_id)] = await rows(store)
    assert (kind, status) == ("scheduled", "pending")
    assert turn is not None and followup_id is not None


async def test_the_followup_is_superseded_when_the_person_moved_on_before_the_resend(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await a_followup_committed_and_never_sent(chat, engine, store, clock)
    # Meanwhile the person starts something else (a step that waits for them).
    await chat.command("pause")
    clock.advance(timedelta(minutes=1))  # past the lease
    sender = RecordingSender()
    await dispatcher(store, engine, clock, sender).run_due()
    assert sender.sent == []
    followup, *reply = await rows(store)
    assert followup[:3] == ("scheduled", "superseded", "conversation moved on")
    assert reply and {status for _, status, *_ in reply} == {"sent"}  # by the chat helper
    # Superseded rows keep nothing of what they said.
    async with store.engine.connect() as connection:
        kept = await connection.execute(
            sql("select count(*) from outbound where message is not null")
        )
        assert kept.scalar() == 0


async def test_the_followup_is_sent_again_when_the_person_has_not_moved_on(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await a_followup_committed_and_never_sent(chat, engine, store, clock)
    clock.advance(timedelta(minutes=1))  # the person has done nothing since
    sender = RecordingSender()
    await dispatcher(store, engine, clock, sender).run_due()
    assert CHECKING_IN in texts(sender.sent[0][1])
    assert [status for _, status, *_ in await rows(store)] == ["sent"]


async def set_turn(store: SqlStore, clock: ManualClock, turn: int) -> None:
    async with store.session() as s:
        state = ConversationState(turn=turn, chat_id="chat-a")
        await s.save_state(UserKey("test", "alice"), state, clock.now())


async def owe_at(store: SqlStore, clock: ManualClock, text: str, turn: int) -> None:
    async with store.session() as s:
        await s.enqueue_outbound(
            UserKey("test", "alice"), ALICE, [Outbound(text)], clock.now(), turn=turn
        )


async def test_a_later_send_supersedes_what_a_dead_process_owed_before_a_newer_turn(
    store: SqlStore, clock: ManualClock
) -> None:
    """The store's side, on both backends: a row past its lease, read back by a later
    send to the chat (take_chat) or by the sweep (claim_unsent), is superseded when
    its turn is over, sent when it is not; rows without a turn are always sent."""
    await set_turn(store, clock, 4)
    await owe_at(store, clock, "asked at turn 4", 4)
    await owe(store, clock, ALICE, "a notice, no turn")
    await owe_at(store, clock, "asked at turn 5", 5)
    await set_turn(store, clock, 5)
    async with store.engine.begin() as connection:
        await connection.execute(sql("update outbound set claimed_by = 'dead-process'"))
    clock.advance(timedelta(seconds=31))
    platform = Platform()
    guide = Delivery(store, clock, interactive={"test": platform}, scheduled={"test": platform})
    async with store.session() as s:
        now_owed = await s.enqueue_outbound(
            UserKey("test", "alice"),
            ALICE,
            [Outbound("the answer at turn 5"), Outbound("and this")],
            clock.now(),
            turn=5,
        )
    await guide.send(now_owed)
    assert platform.texts("chat-a") == [
        "a notice, no turn",
        "asked at turn 5",
        "the answer at turn 5",
        "and this",
    ]
    assert [(status, reason) for _, status, reason, _, _ in await rows(store)] == [
        ("superseded", "conversation moved on"),
        ("sent", None),
        ("sent", None),
        ("sent", None),
        ("sent", None),
    ]


async def test_the_sweep_supersedes_on_both_backends(store: SqlStore, clock: ManualClock) -> None:
    await set_turn(store, clock, 2)
    await owe_at(store, clock, "asked at turn 2", 2)
    await set_turn(store, clock, 3)
    platform = Platform()
    guide = Delivery(store, clock, interactive={"test": platform}, scheduled={"test": platform})
    clock.advance(timedelta(seconds=20))
    assert await guide.resend_unsent() == 0  # within the lease: its sender may be at it
    clock.advance(timedelta(seconds=20))
    assert await guide.resend_unsent() == 0
    assert platform.taken == []
    assert [(status, reason) for _, status, reason, _, _ in await rows(store)] == [
        ("superseded", "conversation moved on")
    ]


async def test_rows_for_a_group_carry_no_turn(store: SqlStore, clock: ManualClock) -> None:
    group = Address("test", "", "group-1", is_private=False)
    async with store.session() as s:
        await s.enqueue_outbound(
            UserKey("test", "alice"),
            ALICE,
            [Outbound("to alice"), Outbound("to the group", to=group)],
            clock.now(),
            OutboundKind.REPLY,
            turn=7,
        )
    assert [turn for *_, turn, _ in await rows(store)] == [7, None]


async def test_a_row_held_back_only_for_order_is_sent_not_superseded(
    store: SqlStore, clock: ManualClock
) -> None:
    """Another process's row holds the chat; the answer written meanwhile waits
    ("after an earlier message"). Once that row is over its lease, the person has
    moved on: the dead process's row is superseded, the answer that only waited goes."""
    await set_turn(store, clock, 4)
    await owe_at(store, clock, "asked at turn 4, by a process that died", 4)
    async with store.engine.begin() as connection:
        await connection.execute(sql("update outbound set claimed_by = 'dead-process'"))
    platform = Platform()
    guide = Delivery(store, clock, interactive={"test": platform}, scheduled={"test": platform})
    async with store.session() as s:
        answer = await s.enqueue_outbound(
            UserKey("test", "alice"), ALICE, [Outbound("the answer at turn 5")], clock.now(), turn=5
        )
    await guide.send(answer)
    assert platform.taken == []
    await set_turn(store, clock, 6)
    clock.advance(timedelta(seconds=31))
    await guide.resend_unsent()
    assert platform.texts("chat-a") == ["the answer at turn 5"]
    assert [(status, reason) for _, status, reason, _, _ in await rows(store)] == [
        ("superseded", "conversation moved on"),
        ("sent", None),
    ]
