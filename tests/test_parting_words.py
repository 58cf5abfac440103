"""/forget's last words (storage/parting_rows.py): stored with no owner in the turn that
deletes the person, so a crash before their send loses nothing, and deleted as soon
as their send is settled, with the chat's counter, so nothing of the person stays.
On the real store (SQLite and PostgreSQL, tests/conftest.py's `store`) and a manual
clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.delivery import Delivery, store_reply
from dialogs.engine import Engine
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.store import OutboundRow, OutboundStatus, UserKey
from storage import SqlStore
from tests.conftest import onboard

ALICE = Address("test", "alice", "chat-a")
ALICE_KEY = UserKey("test", "alice")
BYE = "Done. Everything I kept about you is deleted."


class Recorder:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.down = False

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        if self.down:
            raise ConnectionError("network down")
        self.texts.extend(m.text for m in messages)


def delivery(store: SqlStore, clock: ManualClock, sender: Recorder) -> Delivery:
    lanes = {"test": sender}
    return Delivery(store, clock, interactive=lanes, scheduled=lanes)


async def forget_and_say_bye(store: SqlStore, clock: ManualClock) -> list[OutboundRow]:
    """What the engine's /forget turn does: delete the person, store the words."""
    async with store.session() as s:
        await s.forget_user(ALICE_KEY)
        reply = await store_reply(s, ALICE_KEY, ALICE, [Outbound(BYE)], clock.now(), forgotten=True)
    return list(reply.rows)


async def left_of_alice(store: SqlStore) -> dict[str, int]:
    """Rows anywhere that name Alice's chat or her."""
    async with store.engine.connect() as connection:
        return {
            table: int(await connection.scalar(sql(query)) or 0)
            for table, query in {
                "outbound": "select count(*) from outbound where chat_id = 'chat-a'",
                "outbound_chats": "select count(*) from outbound_chats where chat_id = 'chat-a'",
                "users": "select count(*) from users where platform_user_id = 'alice'",
            }.items()
        }


NOTHING = {"outbound": 0, "outbound_chats": 0, "users": 0}


async def owe_alice(store: SqlStore, clock: ManualClock, text: str) -> OutboundRow:
    """A row of Alice's own (a new conversation's, after /forget) to her chat."""
    async with store.session() as s:
        [row] = await s.enqueue_outbound(ALICE_KEY, ALICE, [Outbound(text)], clock.now())
    return row


async def test_the_words_are_sent_then_nothing_of_the_person_is_left(
    store: SqlStore, clock: ManualClock
) -> None:
    await onboard(store, clock, ALICE)
    rows = await forget_and_say_bye(store, clock)
    # Owed after the commit: stored, with no owner.
    assert [r.message.text for r in rows] == [BYE]
    assert (await left_of_alice(store))["outbound"] == 1
    sender = Recorder()
    report = await delivery(store, clock, sender).send(rows)
    assert report.sent == 1 and sender.texts == [BYE]
    assert await left_of_alice(store) == NOTHING


async def test_a_crash_before_the_send_loses_nothing_another_sweep_sends_them(
    store: SqlStore, clock: ManualClock
) -> None:
    await onboard(store, clock, ALICE)
    await forget_and_say_bye(store, clock)
    # The process that committed /forget died before sending: a fresh one, after
    # the lease, finds the words and sends them, then deletes them.
    clock.advance(timedelta(minutes=1))
    sender = Recorder()
    assert await delivery(store, clock, sender).resend_unsent() == 1
    assert sender.texts == [BYE]
    assert await left_of_alice(store) == NOTHING


async def test_a_failed_send_keeps_them_for_the_sweep(store: SqlStore, clock: ManualClock) -> None:
    await onboard(store, clock, ALICE)
    rows = await forget_and_say_bye(store, clock)
    sender = Recorder()
    sender.down = True
    outbox = delivery(store, clock, sender)
    assert (await outbox.send(rows)).left == 1
    assert (await left_of_alice(store))["outbound"] == 1
    sender.down = False
    clock.advance(timedelta(minutes=1))
    assert await outbox.resend_unsent() == 1
    assert sender.texts == [BYE]
    assert await left_of_alice(store) == NOTHING


async def test_a_new_conversation_after_them_keeps_its_counter_and_its_order(
    store: SqlStore, clock: ManualClock
) -> None:
    await onboard(store, clock, ALICE)
    parting = await forget_and_say_bye(store, clock)
    # They come back before the words went out: the new conversation's rows come
    # after them, and its counter is not the words' to delete.
    fresh = await owe_alice(store, clock, "Welcome")
    assert fresh.seq > parting[0].seq
    sender = Recorder()
    outbox = delivery(store, clock, sender)
    await outbox.send(parting)
    await outbox.send([fresh])
    assert sender.texts == [BYE, "Welcome"]
    left = await left_of_alice(store)
    assert left["outbound"] == 1  # the new conversation's own, sent
    assert left["outbound_chats"] == 1
    again = await owe_alice(store, clock, "Later")
    assert again.seq == fresh.seq + 1


async def test_a_counter_moved_on_by_a_sent_row_is_kept(
    store: SqlStore, clock: ManualClock
) -> None:
    await onboard(store, clock, ALICE)
    parting = await forget_and_say_bye(store, clock)
    fresh = await owe_alice(store, clock, "Welcome")
    # The later row is settled first (nothing pending after the words): only the
    # counter's value says it is no longer the words'.
    await store.mark_outbound([(fresh.id, OutboundStatus.SENT, None)], clock.now())
    await delivery(store, clock, Recorder()).send(parting)
    again = await owe_alice(store, clock, "Later")
    assert again.seq == fresh.seq + 1


async def test_a_chat_where_others_are_still_owed_keeps_its_counter(
    store: SqlStore, clock: ManualClock
) -> None:
    # Said in a group (/forget answered where it was asked): an earlier row of
    # someone else's is still owed there, so the counter keeps counting after it.
    group = Address("test", "", "group-1", is_private=False)
    await onboard(store, clock, ALICE)
    async with store.session() as s:
        earlier = await s.enqueue_outbound(
            UserKey("test", "bob"), group, [Outbound("Q1")], clock.now()
        )
        await s.forget_user(ALICE_KEY)
        reply = await store_reply(s, ALICE_KEY, group, [Outbound(BYE)], clock.now(), forgotten=True)
    await store.mark_outbound([(reply.rows[0].id, OutboundStatus.SENT, None)], clock.now())
    async with store.session() as s:
        later = await s.enqueue_outbound(
            UserKey("test", "bob"), group, [Outbound("Q2")], clock.now()
        )
    assert earlier[0].seq < reply.rows[0].seq < later[0].seq


async def test_words_settled_without_a_mark_go_with_the_next_purge(
    store: SqlStore, clock: ManualClock
) -> None:
    await onboard(store, clock, ALICE)
    rows = await forget_and_say_bye(store, clock)
    # Settled some other way than the outbox's mark (an operator, say): the purge
    # deletes them however young, and the old rows of others only by age.
    async with store.engine.begin() as connection:
        await connection.execute(
            sql("update outbound set status = 'superseded', message = null where id = :id"),
            {"id": rows[0].id},
        )
    assert await store.purge_outbound(clock.now(), timedelta(days=30)) == 1
    assert await left_of_alice(store) == NOTHING


async def test_a_settled_row_of_a_person_is_kept_as_before(
    store: SqlStore, clock: ManualClock
) -> None:
    # Only rows with no owner go at once: a person's sent row stays until the purge.
    await onboard(store, clock, ALICE)
    row = await owe_alice(store, clock, "hello")
    await store.mark_outbound([(row.id, OutboundStatus.SENT, None)], clock.now())
    assert (await left_of_alice(store))["outbound"] == 1


async def test_the_forget_update_delivered_again_answers_nothing_and_makes_nobody(
    engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    # The platform sends the /forget turn's update again (a crash before it was
    # confirmed): without its event kept, it would be a new person's first message,
    # answered with a greeting, their row made again.
    await onboard(store, clock, ALICE)
    await engine.handle(Inbound(ALICE, "ask", clock.now(), command=Command("forget", ())))
    yes = Inbound(ALICE, "yes-1", clock.now(), text="yes")
    said = await engine.handle(yes)
    assert said[0].text.startswith("Done. Everything I kept about you is deleted")
    assert await engine.handle(yes) == []
    assert (await left_of_alice(store))["users"] == 0


async def test_an_event_already_handled_makes_no_person(
    store: SqlStore, clock: ManualClock
) -> None:
    # Either way of opening an event: the row made for a first contact is undone
    # when the event turns out to be handled already.
    async with store.session() as s:
        assert await s.open_event("test:seen", clock.now(), UserKey("test", "carol")) is not None
        await s.forget_user(UserKey("test", "carol"), asked_in="test:seen")
    async with store.session() as s:
        assert await s.open_event("test:seen", clock.now(), UserKey("test", "carol")) is None
    async with store.session() as s:
        assert not await s.claim_event("test:seen", clock.now(), UserKey("test", "carol"))
    async with store.engine.connect() as connection:
        assert await connection.scalar(sql("select count(*) from users")) == 0
