"""Outbox rows from commit to mark (dialogs.delivery) on the real store and a manual
clock: order, what is dropped and why, what the sweep takes, marks in groups, and the
store's batch of transactions. `store` is tests/conftest.py's: each test runs on SQLite
and on PostgreSQL (a migrated schema of its own, emptied before the test)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.delivery import (
    Delivered,
    Delivery,
    NotSent,
    RecipientUnreachable,
    Refused,
    Reply,
    Sender,
    store_reply,
)
from dialogs.engine import Engine
from dialogs.events import Address, Attachment, Outbound
from dialogs.store import FollowUpRequest, OutboundKind, OutboundRow, Profile, UserKey
from storage import SqlStore
from tests.conftest import Chat, onboard

ALICE = Address("test", "alice", "chat-a")
BOB = Address("test", "bob", "chat-b")
GROUP = Address("test", "", "group-1", is_private=False)


class Recorder:
    """Records each call; fails as told, per chat, once each."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.fail: dict[str, Exception] = {}

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        error = self.fail.pop(address.chat_id, None)
        if error is not None:
            raise error
        self.calls.append((address.chat_id, [m.text for m in messages]))

    def texts(self, chat_id: str | None = None) -> list[str]:
        return [t for c, ts in self.calls if chat_id in (None, c) for t in ts]


class Tracking(Recorder):
    """Says which messages got through before failing on the one named `fail_at`."""

    tracks_delivery = True

    def __init__(self, fail_at: str, error: Exception) -> None:
        super().__init__()
        self.fail_at, self.error = fail_at, error

    async def send(
        self, address: Address, messages: Sequence[Outbound], delivered: Delivered | None = None
    ) -> None:
        assert delivered is not None  # delivery reports to a tracking sender
        for index, message in enumerate(messages):
            if message.text == self.fail_at:
                self.fail_at = ""
                raise self.error
            self.calls.append((address.chat_id, [message.text]))
            delivered(index)


def delivery(store: SqlStore, clock: ManualClock, sender: Sender) -> Delivery:
    lanes = {"test": sender}
    return Delivery(store, clock, interactive=lanes, scheduled=lanes)


async def owe(
    store: SqlStore,
    clock: ManualClock,
    to: Address,
    *texts: str,
    kind: OutboundKind = OutboundKind.REPLY,
) -> list[OutboundRow]:
    async with store.session() as s:
        return await s.enqueue_outbound(
            UserKey("test", to.user_id or "owner"),
            to,
            [Outbound(t) for t in texts],
            clock.now(),
            kind,
        )


async def fates(store: SqlStore) -> list[tuple[str, int, str, str | None]]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            sql("select chat_id, seq, status, reason from outbound order by chat_id, seq")
        )
        return [tuple(r) for r in rows]


async def test_rows_go_in_order_one_call_per_chat_and_are_marked(
    store: SqlStore, clock: ManualClock
) -> None:
    rows = await owe(store, clock, ALICE, "a1", "a2", "a3")
    rows += await owe(store, clock, BOB, "b1")
    sender = Recorder()
    report = await delivery(store, clock, sender).send(rows)
    assert (report.sent, report.dropped, report.left) == (4, 0, 0)
    assert sorted(sender.calls) == [("chat-a", ["a1", "a2", "a3"]), ("chat-b", ["b1"])]
    assert [f[2] for f in await fates(store)] == ["sent"] * 4
    # A sent row keeps no text: only what became of it.
    async with store.engine.connect() as connection:
        assert (await connection.execute(sql("select message from outbound"))).scalars().all() == [
            None
        ] * 4


async def test_sequence_numbers_follow_commits_per_chat(
    store: SqlStore, clock: ManualClock
) -> None:
    await owe(store, clock, ALICE, "1", "2")
    await owe(store, clock, BOB, "x")
    await owe(store, clock, ALICE, "3")
    assert [(c, seq) for c, seq, _, _ in await fates(store)] == [
        ("chat-a", 1),
        ("chat-a", 2),
        ("chat-a", 3),
        ("chat-b", 1),
    ]


async def test_a_row_is_first_when_nothing_to_its_address_is_still_owed(
    store: SqlStore, clock: ManualClock
) -> None:
    """`first` lets a send skip asking the store what comes before a row: true only
    when no earlier row to the same address is pending, this transaction's own aside
    (one turn may store its messages in two calls)."""
    [a1] = await owe(store, clock, ALICE, "a1")
    assert a1.first
    # An earlier row to the address is pending: not first, on one address or several.
    [a2] = await owe(store, clock, ALICE, "a2")
    assert not a2.first
    async with store.session() as s:
        mixed = await s.enqueue_outbound(
            UserKey("test", "alice"),
            ALICE,
            [Outbound("a3"), Outbound("to bob", to=BOB)],
            clock.now(),
        )
    assert [row.first for row in mixed] == [False, True]
    # Another person's rows in the same chat are owed to another address.
    [carol] = await owe(store, clock, Address("test", "carol", "chat-a"), "c1")
    assert carol.first
    await delivery(store, clock, Recorder()).send([a1, a2, mixed[0]])
    async with store.session() as s:
        owner = UserKey("test", "alice")
        [a4] = await s.enqueue_outbound(owner, ALICE, [Outbound("a4")], clock.now())
        [a5] = await s.enqueue_outbound(owner, ALICE, [Outbound("a5")], clock.now())
    assert a4.first
    assert a5.first  # a4 is pending, but it is this transaction's own


async def test_a_row_too_old_is_dropped_and_recorded_never_sent_late(
    store: SqlStore, clock: ManualClock
) -> None:
    reply = await owe(store, clock, ALICE, "an old reply")
    checkin = await owe(store, clock, BOB, "a check-in", kind=OutboundKind.SCHEDULED)
    clock.advance(timedelta(minutes=11))  # past a reply's 10 minutes, within an hour
    sender = Recorder()
    report = await delivery(store, clock, sender).send(reply + checkin)
    assert sender.texts() == ["a check-in"]
    assert report.dropped == 1
    assert await fates(store) == [
        ("chat-a", 1, "dropped", "expired"),
        ("chat-b", 1, "sent", None),
    ]


async def test_a_refused_message_is_dropped_and_the_rest_still_go(
    store: SqlStore, clock: ManualClock
) -> None:
    rows = await owe(store, clock, ALICE, "one", "too long", "three")
    sender = Tracking("too long", Refused("message is too long"))
    report = await delivery(store, clock, sender).send(rows)
    assert sender.texts() == ["one", "three"]
    assert (report.sent, report.refused) == (2, 1)
    assert [(s, r) for _, _, s, r in await fates(store)] == [
        ("sent", None),
        ("dropped", "refused"),
        ("sent", None),
    ]


async def test_a_failed_send_leaves_its_rows_and_the_chats_next_ones_for_the_sweep(
    store: SqlStore, clock: ManualClock
) -> None:
    rows = await owe(store, clock, ALICE, "one", "two", "three")
    sender = Tracking("two", ConnectionError("network down"))
    outbox = delivery(store, clock, sender)
    report = await outbox.send(rows)
    assert (report.sent, report.left) == (1, 2)
    assert [s for _, _, s, _ in await fates(store)] == ["sent", "pending", "pending"]
    # Within the lease nothing is taken again; after it, the rest go, in order.
    clock.advance(timedelta(seconds=20))
    assert await outbox.resend_unsent() == 0
    clock.advance(timedelta(seconds=20))
    assert await outbox.resend_unsent() == 2
    assert sender.texts() == ["one", "two", "three"]
    assert [s for _, _, s, _ in await fates(store)] == ["sent"] * 3


async def test_shutting_down_leaves_rows_pending_and_says_so(
    store: SqlStore, clock: ManualClock
) -> None:
    rows = await owe(store, clock, ALICE, "one")
    sender = Recorder()
    sender.fail["chat-a"] = NotSent("closing")
    with pytest.raises(NotSent):
        await delivery(store, clock, sender).send(rows)
    assert [s for _, _, s, _ in await fates(store)] == ["pending"]


async def test_unreachable_drops_the_chats_rows_and_stops_planning_for_the_person(
    store: SqlStore, clock: ManualClock
) -> None:
    await onboard(store, clock, ALICE)
    async with store.session() as s:
        await s.schedule_followup(
            UserKey("test", "alice"),
            FollowUpRequest("followup", "chat-a", clock.now(), clock.now(), "later"),
        )
    rows = await owe(store, clock, ALICE, "one", "two")
    rows += await owe(store, clock, BOB, "for bob")
    sender = Recorder()
    sender.fail["chat-a"] = RecipientUnreachable("blocked")
    await delivery(store, clock, sender).send(rows)
    assert sender.texts() == ["for bob"]
    assert [(c, s, r) for c, _, s, r in await fates(store)] == [
        ("chat-a", "dropped", "unreachable"),
        ("chat-a", "dropped", "unreachable"),
        ("chat-b", "sent", None),
    ]
    async with store.session() as s:
        assert (await s.load_profile(UserKey("test", "alice"))).unreachable_at == clock.now()
        assert await s.pending_followups(UserKey("test", "alice")) == []


async def test_the_sweep_leaves_rows_this_process_is_sending(
    store: SqlStore, clock: ManualClock
) -> None:
    rows = await owe(store, clock, ALICE, "slow one")
    release = asyncio.Event()

    class Slow(Recorder):
        async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
            await release.wait()
            await super().send(address, messages)

    sender = Slow()
    outbox = delivery(store, clock, sender)
    sending = asyncio.create_task(outbox.send(rows))
    await asyncio.sleep(0)
    clock.advance(timedelta(minutes=5))  # a 429 storm: far past the lease
    assert await outbox.resend_unsent() == 0
    release.set()
    await sending
    assert sender.texts() == ["slow one"]


async def test_at_start_another_processes_rows_are_taken_at_once_on_sqlite_only(
    store: SqlStore, clock: ManualClock
) -> None:
    await owe(store, clock, ALICE, "owed before the crash", "and this")
    # Written by a process that died: another worker's name on the rows.
    async with store.engine.begin() as connection:
        await connection.execute(sql("update outbound set claimed_by = 'dead-process'"))
    sender = Recorder()
    outbox = delivery(store, clock, sender)
    assert await outbox.resend_unsent() == 0  # the periodic sweep waits out the lease
    if store.engine.dialect.name == "sqlite":
        assert await outbox.resend_unsent(startup=True) == 2
        assert sender.calls == [("chat-a", ["owed before the crash", "and this"])]
    else:
        # On PostgreSQL another worker may be sending them right now: even at start,
        # they wait out the lease.
        assert await outbox.resend_unsent(startup=True) == 0
        assert sender.calls == []


async def test_marks_from_many_sends_share_transactions(
    store: SqlStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    chats = [Address("test", f"u{n}", f"c{n}") for n in range(40)]
    owed = [await owe(store, clock, chat, "hello") for chat in chats]
    writes: list[int] = []
    real = store.mark_outbound

    async def counting(marks: Sequence[object], at: object) -> None:
        writes.append(len(marks))
        await real(marks, at)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "mark_outbound", counting)
    outbox = delivery(store, clock, Recorder())
    await asyncio.gather(*(outbox.send(rows) for rows in owed))
    assert sum(writes) == 40
    assert len(writes) < 10  # not one transaction per message
    assert {s for _, _, s, _ in await fates(store)} == {"sent"}


async def test_a_reply_is_stored_unless_it_must_not_be(store: SqlStore, clock: ManualClock) -> None:
    async with store.session() as s:
        user = UserKey("test", "alice")
        stored = await store_reply(s, user, ALICE, [Outbound("hi"), Outbound("there")], clock.now())
        file = Attachment("export.json", b"{}", "application/json")
        with_file = await store_reply(
            s, user, ALICE, [Outbound("here", attachment=file)], clock.now()
        )
        forgotten = await store_reply(
            s, user, ALICE, [Outbound("bye")], clock.now(), forgotten=True
        )
    assert [r.message.text for r in stored.rows] == ["hi", "there"]
    assert stored.row_of(stored[1]) is stored.rows[1]
    assert with_file.rows == ()
    # /forget's last words are stored, but belong to nobody (the person is gone).
    [parting] = forgotten.rows
    assert parting.message.text == "bye"
    async with store.engine.connect() as connection:
        owner = await connection.scalar(
            sql("select user_id from outbound where id = :id"), {"id": parting.id}
        )
    assert owner is None
    noted = stored.after([Outbound("a note of the adapter's")])
    assert [m.text for m in noted] == ["a note of the adapter's", "hi", "there"]
    assert noted.row_of(noted[0]) is None and noted.rows_for(noted[1:]) == list(stored.rows)
    with pytest.raises(ValueError):
        Reply([Outbound("one")], stored.rows)


async def test_a_turn_that_fails_stores_no_reply(chat: Chat, store: SqlStore) -> None:
    """The rows are in the turn's transaction: a turn rolled back owes nothing."""
    engine: Engine = chat.engine
    real = store.session

    class Broken:
        def __init__(self) -> None:
            self.inner = real()

        async def __aenter__(self) -> object:
            session = await self.inner.__aenter__()

            async def fail(*args: object, **kwargs: object) -> None:
                raise OSError("disk full")

            session.save_turn = fail  # type: ignore[method-assign]
            return session

        async def __aexit__(self, *exc: object) -> object:
            return await self.inner.__aexit__(*exc)  # type: ignore[arg-type]

    engine._store = type("S", (), {"session": lambda self: Broken()})()
    out = await chat.command("help")
    engine._store = store
    assert out.rows == () and "Sorry" in out[0].text
    assert await fates(store) == []


async def test_a_batch_commits_once_and_a_failure_undoes_only_its_own_part(
    store: SqlStore, clock: ManualClock
) -> None:
    people = [UserKey("test", f"p{n}") for n in range(3)]
    with pytest.raises(RuntimeError):
        async with store.batch():
            for n, user in enumerate(people):
                try:
                    async with store.session() as s:
                        await s.save_profile(user, Profile(country=f"C{n}"))
                        if n == 1:
                            raise ValueError("this one fails")
                except ValueError:
                    pass
            raise RuntimeError("the whole batch fails after all")
    async with store.session() as s:
        assert [(await s.load_profile(u)).country for u in people] == [None, None, None]
    async with store.batch():
        for n, user in enumerate(people):
            try:
                async with store.session() as s:
                    await s.save_profile(user, Profile(country=f"C{n}"))
                    if n == 1:
                        raise ValueError("this one fails")
            except ValueError:
                pass
    async with store.session() as s:
        assert [(await s.load_profile(u)).country for u in people] == ["C0", None, "C2"]
