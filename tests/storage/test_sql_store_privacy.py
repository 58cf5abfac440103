import base64
import json
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Table, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.events import Address, Outbound
from dialogs.reflection.store import ReflectionAnswer
from dialogs.store import ConversationState, FollowUpRequest, Profile, UserKey
from storage import SqlStore
from storage.membership import MEMBER_SECRET, member_tag
from storage.models import (
    Base,
    DeploymentSecretRow,
    JournalEntryRow,
    ProcessedEventRow,
    ReferralCountRow,
    UserRow,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ALICE = UserKey("telegram", "alice")
BOB = UserKey("telegram", "bob")
DAY = date(2026, 1, 5)


async def _populate(store: SqlStore, user: UserKey, secret: str) -> None:
    """A row in every table that holds something about `user`."""
    name = user.user_id
    async with store.session() as session:
        assert await session.claim_event(f"{name}:1", T0, user)
        assert await session.claim_event(f"{name}:2", T0 + timedelta(seconds=1), user)
        await session.load_state(user, T0)
        await session.save_state(
            user,
            ConversationState(
                flow_id="vent",
                node_id="ask",
                variables={"answer": secret, "score": 3},
                turn=2,
                chat_id=f"chat-{name}",
            ),
            T0,
        )
        await session.save_profile(
            user, Profile(consent_at=T0, adult=True, country="GB", zone="Europe/London")
        )
        await session.append_journal(user, T0, "vent", "rate", "rating", "4")
        await session.append_journal(user, T0, "vent", "pick", "choice", "walk")
        for key in (f"{name}-a", f"{name}-b"):
            request = FollowUpRequest("checkin", f"chat-{name}", T0, T0 + timedelta(hours=1), key)
            assert await session.schedule_followup(user, request)
        await session.count_referral(DAY, "GB", "crisis")
        # A reply still owed (pending in the outbox), quoting them.
        await session.enqueue_outbound(
            user, Address("telegram", name, f"chat-{name}"), [Outbound(f"you said {secret}")], T0
        )
        link = await session.create_link(user, f"chat-{name}", f"hash-{name}", T0)
        await session.add_signal(link.id, user, "pause", "I'm taking a pause, not leaving.", T0)
        reflection = await session.create_reflection(
            token=f"tok-{name}",
            platform=user.platform,
            chat_id=f"group-{name}",
            reflection_id="noticing",
            facilitator=user,
            minutes=3,
            at=T0,
        )
        assert await session.add_participant(reflection.id, user, f"chat-{name}", T0)
        await session.save_answer(
            reflection.id,
            ReflectionAnswer(user, "alarm", None, f"{secret} in a group", None, False, False, T0),
        )


def _user_columns(table: Table) -> list[Column[Any]]:
    """Columns that can point at a user: foreign keys to users, or named like one."""
    columns = {fk.parent for fk in table.foreign_keys if fk.column.table.name == "users"}
    columns |= {column for column in table.columns if column.name == "user_id"}
    return sorted(columns, key=lambda column: column.name)


async def _user_id(engine: AsyncEngine, user: UserKey) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(
            select(UserRow.id).where(
                UserRow.platform == user.platform, UserRow.platform_user_id == user.user_id
            )
        )
    assert found is not None
    return found


async def _member(engine: AsyncEngine, user: UserKey) -> str:
    """The tag that reflection rows name `user` by (storage.membership)."""
    async with engine.connect() as connection:
        value = await connection.scalar(
            select(DeploymentSecretRow.value).where(DeploymentSecretRow.name == MEMBER_SECRET)
        )
    if value is None:
        return "no member secret yet"
    return member_tag(base64.b64decode(value["value"]), user)


async def _rows_about(engine: AsyncEngine, user: UserKey, user_id: int) -> dict[str, int]:
    """For EVERY table in the schema, how many rows refer to `user` (whose id is, or
    was before being forgotten, `user_id`), by user id or by member tag."""
    found: dict[str, int] = {}
    member = await _member(engine, user)
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            conditions = [column == user_id for column in _user_columns(table)]
            if "member" in table.c:
                conditions.append(table.c.member == member)
            if table.name == "inbox":
                # A webhook update not yet handled, by the person's platform id.
                conditions.append(
                    (table.c.platform == user.platform) & (table.c.person == user.user_id)
                )
            if table.name == "users":
                conditions += [
                    table.c.id == user_id,
                    (table.c.platform == user.platform)
                    & (table.c.platform_user_id == user.user_id),
                ]
            query = select(func.count()).select_from(table).where(or_(false(), *conditions))
            found[table.name] = await connection.scalar(query) or 0
    return found


async def _referral_counts(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(ReferralCountRow).order_by(ReferralCountRow.day))
        return [tuple(row) for row in rows]


async def test_the_scan_sees_every_user_table(store: SqlStore, engine: AsyncEngine) -> None:
    # Guards the forget test: a scan that found nothing would prove nothing.
    await _populate(store, ALICE, "alice's secret")
    about = await _rows_about(engine, ALICE, await _user_id(engine, ALICE))
    assert about == {
        "users": 1,
        "conversations": 1,
        "journal": 2,
        "followups": 2,
        "processed_events": 2,
        "referrals": 0,
        "reflection_sessions": 1,
        "reflection_participants": 1,
        "reflection_answers": 1,
        "outbound": 1,
        "outbound_chats": 0,
        "deployment_secrets": 0,
        "partner_links": 1,
        "partner_signals": 1,
        # Named leases and shared send budgets are the deployment's, about nobody;
        # webhook updates are kept only until handled.
        "leases": 0,
        "send_budgets": 0,
        "inbox": 0,
    }


async def test_forget_user_removes_everything_about_them_and_nothing_else(
    store: SqlStore, engine: AsyncEngine
) -> None:
    await _populate(store, ALICE, "alice's secret")
    await _populate(store, BOB, "bob's secret")
    alice_id, bob_id = await _user_id(engine, ALICE), await _user_id(engine, BOB)
    alice_before = await _rows_about(engine, ALICE, alice_id)
    bob_before = await _rows_about(engine, BOB, bob_id)
    referrals_before = await _referral_counts(engine)

    async with store.session() as session:
        deleted = await session.forget_user(ALICE)

    assert deleted == sum(alice_before.values())
    assert set((await _rows_about(engine, ALICE, alice_id)).values()) == {0}
    assert await _rows_about(engine, BOB, bob_id) == bob_before
    assert await _referral_counts(engine) == referrals_before
    assert referrals_before == [(DAY, "GB", "crisis", 2)]
    async with store.session() as session:
        bob = await session.export_user(BOB)
    assert bob["conversation"]["variables"] == {"answer": "bob's secret", "score": 3}


async def test_forget_leaves_no_trace_in_the_database_file(
    store: SqlStore, engine: AsyncEngine
) -> None:
    await _populate(store, ALICE, "a-very-distinctive-answer")
    async with store.session() as session:
        await session.forget_user(ALICE)
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in await connection.execute(select(table)):
                assert "alice" not in repr(tuple(row)), table.name
                assert "distinctive" not in repr(tuple(row)), table.name


async def test_forget_an_unknown_user_is_a_no_op(store: SqlStore, engine: AsyncEngine) -> None:
    await _populate(store, BOB, "bob's secret")
    bob_before = await _rows_about(engine, BOB, await _user_id(engine, BOB))
    async with store.session() as session:
        assert await session.forget_user(ALICE) == 0
    async with store.session() as session:
        assert await session.forget_user(BOB) == sum(bob_before.values())
        assert await session.forget_user(BOB) == 0


async def test_forget_within_a_session_that_loaded_the_user(store: SqlStore) -> None:
    await _populate(store, ALICE, "secret")
    async with store.session() as session:
        await session.load_state(ALICE, T0)
        assert await session.load_profile(ALICE) != Profile()
        assert await session.forget_user(ALICE) > 0
        assert await session.load_profile(ALICE) == Profile()
        assert (await session.export_user(ALICE))["user"] is None
        assert await session.pending_followups(ALICE) == []


async def test_forget_a_user_first_seen_in_the_same_session(
    store: SqlStore, engine: AsyncEngine
) -> None:
    # load_state owes a conversation row (written by save_turn, or empty at commit);
    # once the person is forgotten it must never be written.
    async with store.session() as session:
        assert await session.claim_event("alice:1", T0, ALICE)
        await session.load_state(ALICE, T0)
        assert await session.forget_user(ALICE) == 2  # the user and the event
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if table.name == "deployment_secrets":
                continue  # the deployment's own, about nobody
            count = await connection.scalar(select(func.count()).select_from(table))
            assert count == 0, table.name


async def test_export_user_has_every_table_and_is_json(store: SqlStore) -> None:
    await _populate(store, ALICE, "alice's secret")
    await _populate(store, BOB, "bob's secret")
    async with store.session() as session:
        exported = await session.export_user(ALICE)

    text = json.dumps(exported)
    assert "bob" not in text
    assert set(exported) == {
        "user",
        "conversation",
        "journal",
        "followups",
        "processed_events",
        "reflections_joined",
        "reflection_answers",
        "outbound",
        "partner_links",
        "partner_signals",
    }
    user = exported["user"]
    assert (user["platform"], user["platform_user_id"], user["zone"]) == (
        "telegram",
        "alice",
        "Europe/London",
    )
    # Superseded by `zone` in migration 0004.
    assert "timezone" not in user
    # Every profile field is exported, by its own name.
    assert {field.name for field in fields(Profile)} <= set(user)
    assert user["preferences"] == {}
    assert (user["consent_at"], user["adult"], user["country"], user["unsafe"]) == (
        T0.isoformat(),
        True,
        "GB",
        False,
    )
    assert user["created_at"] == T0.isoformat()
    assert "last_seen_at" in user
    conversation = exported["conversation"]
    assert conversation["variables"] == {"answer": "alice's secret", "score": 3}
    assert (conversation["flow_id"], conversation["chat_id"], conversation["updated_at"]) == (
        "vent",
        "chat-alice",
        T0.isoformat(),
    )
    assert [(e["kind"], e["value"]) for e in exported["journal"]] == [
        ("rating", "4"),
        ("choice", "walk"),
    ]
    assert [f["dedupe_key"] for f in exported["followups"]] == ["alice-a", "alice-b"]
    assert {f["status"] for f in exported["followups"]} == {"pending"}
    assert {(f["kind"], f["messages"]) for f in exported["followups"]} == {("once", None)}
    assert exported["followups"][0]["due_at"] == T0.isoformat()
    assert [(a["step_id"], a["text"]) for a in exported["reflection_answers"]] == [
        ("alarm", "alice's secret in a group")
    ]
    assert [j["chat_id"] for j in exported["reflections_joined"]] == ["chat-alice"]
    [owed] = exported["outbound"]
    assert (owed["status"], owed["chat_id"], owed["kind"]) == ("pending", "chat-alice", "reply")
    assert owed["message"]["text"] == "you said alice's secret"
    assert exported["processed_events"] == [
        {"event_key": "alice:1", "processed_at": T0.isoformat()},
        {"event_key": "alice:2", "processed_at": (T0 + timedelta(seconds=1)).isoformat()},
    ]


async def test_export_of_an_unknown_user_is_empty_and_creates_nothing(
    store: SqlStore, engine: AsyncEngine
) -> None:
    async with store.session() as session:
        exported = await session.export_user(ALICE)
    assert exported == {
        "user": None,
        "conversation": None,
        "journal": [],
        "followups": [],
        "processed_events": [],
        "reflections_joined": [],
        "reflection_answers": [],
        "outbound": [],
        "partner_links": [],
        "partner_signals": [],
    }
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(UserRow)) == 0


async def test_purge_deletes_only_rows_older_than_their_limit(
    store: SqlStore, engine: AsyncEngine
) -> None:
    now = T0 + timedelta(days=100)
    journal_age, events_age = timedelta(days=90), timedelta(days=7)
    tick = timedelta(microseconds=1)
    journal_times = [now - journal_age - tick, now - journal_age, now - journal_age + tick]
    event_times = [now - events_age - tick, now - events_age, now]
    async with store.session() as session:
        for at in journal_times:
            await session.append_journal(ALICE, at, "f", "n", "choice", at.isoformat())
        for index, at in enumerate(event_times):
            assert await session.claim_event(f"e{index}", at, ALICE)
        await session.save_state(ALICE, ConversationState(flow_id="f"), T0)

    assert await store.purge(now, journal_age, events_age) == (1, 1)

    async with engine.connect() as connection:
        journal = (await connection.scalars(select(JournalEntryRow.at).order_by("at"))).all()
        events = (
            await connection.scalars(
                select(ProcessedEventRow.processed_at).order_by("processed_at")
            )
        ).all()
    # Exactly at the limit is not older than it: kept.
    assert journal == journal_times[1:]
    assert events == event_times[1:]
    assert await store.purge(now, journal_age, events_age) == (0, 0)
    # Purging is for logs; the person, their state and consent stay.
    async with store.session() as session:
        assert (await session.load_state(ALICE, now)).flow_id == "f"


async def test_purge_of_an_empty_store(store: SqlStore) -> None:
    assert await store.purge(T0, timedelta(days=1), timedelta(days=1)) == (0, 0)
