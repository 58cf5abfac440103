"""`pausecheck db copy`: an SQLite database in real use moved to PostgreSQL, and back.

The SQLite database is made by the engine itself, with encryption at rest on: a
person mid-pause with a check planned, a /space return reminder, a partner link, and
a group reflection with answers. After the copy, the guide opened on PostgreSQL (same
keys) sees the same state and follow-ups, carries on the conversation, delivers the
follow-up when it comes due and gives out new ids past the copied ones; copied back to
SQLite, every row of every table is what it was. A target that holds rows is refused.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import JSON, func, select
from typer.testing import CliRunner

from bot.cli import app
from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import UserKey
from storage import SqlStore, open_store
from storage.copy import copy_database, tables
from storage.engine import create_engine_for
from tests.conftest import Chat, make_engine, onboard
from tests.link.conftest import link_up
from tests.postgres import postgres_schema_url

KEYS = [Fernet.generate_key().decode()]
# 20:00 in London (winter): outside quiet hours.
EVENING = datetime(2026, 1, 10, 20, 0, tzinfo=UTC)
ALICE = Address("test", "alice", "alice", True)
BOB = Address("test", "bob", "bob", True)
PEOPLE = ("ana", "ben", "cai", "fac")


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


@pytest.fixture
def pg_url_2() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


def copy(source: str, target: str, *extra: str) -> Any:
    env = {"PAUSECHECK_TIMEZONE": "Europe/London", "PAUSECHECK_DATABASE_URL": target}
    return CliRunner().invoke(
        app, ["db", "copy", "--from", source, "--to", target, *extra], env=env
    )


class Group:
    """A group reflection's people, acting as an adapter would deliver them."""

    def __init__(self, chat: Chat) -> None:
        self.engine = chat.engine
        self.clock = chat.clock
        self.seen: dict[str, list[Outbound]] = {}
        self.n = 0

    async def act(self, user: str, *, group: bool = False, **kind: Any) -> list[Outbound]:
        self.n += 1
        address = Address("test", user, "g1" if group else user, is_private=not group)
        assert self.clock is not None
        inbound = Inbound(address, f"g{self.n}", self.clock.now(), facilitator=group, **kind)
        out = await self.engine.handle(inbound)
        for message in out:
            where = message.to or address
            self.seen.setdefault(where.chat_id, []).append(message)
        return out

    def button(self, where: str, label: str) -> str:
        for message in reversed(self.seen.get(where, [])):
            for choice in message.choices:
                if choice.label == label:
                    return choice.id
        raise AssertionError(f"no {label!r} in {where}")


async def use_the_guide(
    url: str, content: Content, screen: SafetyScreen, resources: SafetyResources
) -> str:
    """Bob's next button, where he stopped."""
    clock = ManualClock(EVENING)
    store = await open_store(url, clock=clock, encryption_keys=KEYS)
    try:
        engine = make_engine(content, store, clock, screen, resources)
        alice = Chat(engine, address=ALICE, clock=clock)
        bob = Chat(engine, address=BOB, clock=clock)
        for person in (ALICE, BOB):
            await onboard(store, clock, person)
        # A /space return reminder.
        await alice.command("space")
        for label in ("In an hour", "Simple and clear", "Yes, remind me"):
            await alice.press(label)
        # A pause with a check in 20 minutes.
        await alice.command("pause")
        for label in ("Done", "7", "Silence", "Reach out more", "It fits"):
            await alice.press(label)
        await alice.press("Settle and wait a set time")
        await alice.press("In 20 minutes")
        await link_up(alice, bob)
        # Bob stops mid-flow: his state is a step with variables.
        await bob.command("pause")
        await bob.press("Done")
        # A group reflection: three people join and answer, one in words (sealed).
        group = Group(alice)
        for name in PEOPLE:
            await onboard(store, clock, Address("test", name, name, True))
        await group.act("fac", group=True, command=Command("reflect", ("start", "noticing", "5")))
        join = next(
            c for m in group.seen["g1"] for c in m.choices if c.label == "Join"
        ).start_payload
        assert join is not None
        for name in PEOPLE[:3]:
            await group.act(name, command=Command("start", (join,)))
            await group.act(name, choice=group.button(name, "I reached out, texted or asked"))
        await group.act("fac", group=True, choice=group.button("g1", "Next step"))
        for name in PEOPLE[:3]:
            await group.act(name, text=f"my alarm, said by {name}")
        return bob.buttons()[0].id
    finally:
        await store.close()


async def everything(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as the models read them (sealed values unopened)."""
    engine = create_engine_for(url)
    try:
        async with engine.connect() as connection:
            found = {}
            for table in tables():
                rows = await connection.execute(select(table))
                found[table.name] = sorted((tuple(row) for row in rows), key=repr)
            return found
    finally:
        await engine.dispose()


async def sql_nulls(url: str) -> dict[str, int]:
    """Per JSON column, how many rows hold SQL NULL (not the JSON value null): the
    store asks `IS NULL` of a cleared outbox message."""
    engine = create_engine_for(url)
    try:
        async with engine.connect() as connection:
            return {
                f"{table.name}.{column.name}": int(
                    await connection.scalar(
                        select(func.count()).select_from(table).where(column.is_(None))
                    )
                    or 0
                )
                for table in tables()
                for column in table.columns
                if isinstance(column.type, JSON)
            }
    finally:
        await engine.dispose()


async def what_the_guide_sees(store: SqlStore, at: datetime) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with store.session() as s:
        for person in (ALICE, BOB):
            user = UserKey(person.platform, person.user_id)
            state = await s.load_state(user, at)
            seen[person.user_id] = (
                state.flow_id,
                state.node_id,
                dict(state.variables),
                await s.load_profile(user),
                [(f.id, f.flow_id, f.due_at, f.kind) for f in await s.pending_followups(user)],
                [(link.id, link.status) for link in await s.links_of(user)],
            )
        session = await s.open_reflection_in("test", "g1")
        assert session is not None
        seen["reflection"] = (session.id, session.step_index, session.step_due_at)
        answers = await s.answers(session.id)
        seen["answers"] = sorted((a.step_id, a.choice) for a in answers)
        # The words, which `answers` leaves out, opened with the keys.
        seen["words"] = [
            getattr(await s.get_answer(session.id, UserKey("test", p), "alarm"), "text", None)
            for p in PEOPLE[:3]
        ]
    return seen


async def test_a_database_in_use_moves_to_postgresql_and_the_guide_carries_on(
    tmp_path: Path,
    pg_url: str,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'pc.db'}"
    bob_next = await use_the_guide(sqlite_url, content, safety_screen, resources)
    clock = ManualClock(EVENING)
    before_store = await open_store(sqlite_url, clock=clock, encryption_keys=KEYS)
    before = await what_the_guide_sees(before_store, EVENING)
    await before_store.close()
    assert before["alice"][4] and before["answers"], "the source holds follow-ups and answers"
    assert before["words"] == [f"my alarm, said by {p}" for p in PEOPLE[:3]]

    result = await asyncio.to_thread(copy, sqlite_url, pg_url)
    assert result.exit_code == 0, result.output
    assert "DIFFERS" not in result.stdout
    for table in tables():
        assert table.name in result.stdout
    # Sealed values are copied as they are: the same tokens, not re-encrypted.
    assert await everything(pg_url) == await everything(sqlite_url)
    nulls = await sql_nulls(sqlite_url)
    assert nulls["outbound.message"] > 0
    assert await sql_nulls(pg_url) == nulls

    store = await open_store(pg_url, clock=clock, encryption_keys=KEYS)
    try:
        assert await what_the_guide_sees(store, EVENING) == before
        engine = make_engine(content, store, clock, safety_screen, resources)
        # Bob's pause goes on from where it stopped.
        bob = Chat(engine, address=BOB, clock=clock)
        out = await bob.send(choice=bob_next)
        assert out, "the step after Bob's went on"
        # Alice's check comes when it is due, from PostgreSQL.
        sent: list[tuple[Address, list[Outbound]]] = []

        class Sender:
            async def send(self, address: Address, messages: Any) -> None:
                sent.append((address, list(messages)))

        clock.advance(timedelta(minutes=21))
        assert await Dispatcher(store, engine, {"test": Sender()}, clock).run_due() >= 1
        assert any(address.user_id == "alice" for address, _ in sent)
        # New rows get ids past every copied one (the sequences were reset).
        carol = Address("test", "carol", "carol", True)
        await onboard(store, clock, carol)
        copied_users = len((await everything(sqlite_url))["users"])
        async with store.session() as s:
            await s.load_state(UserKey("test", "carol"), clock.now())
        rows = (await everything(pg_url))["users"]
        assert max(row[0] for row in rows) == copied_users + 1
    finally:
        await store.close()


async def test_and_back_to_sqlite_every_row_and_id_counter_is_the_same(
    tmp_path: Path,
    pg_url: str,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    first = tmp_path / "first.db"
    back = tmp_path / "back.db"
    await use_the_guide(f"sqlite+aiosqlite:///{first}", content, safety_screen, resources)
    # A deleted row's id is never given again, on any side of the move.
    with sqlite3.connect(first) as connection:
        connection.execute("DELETE FROM journal WHERE id = (SELECT max(id) FROM journal)")
    there = await asyncio.to_thread(copy, f"sqlite+aiosqlite:///{first}", pg_url)
    assert there.exit_code == 0, there.output
    # In batches of two rows: every table takes several.
    report = await copy_database(pg_url, f"sqlite+aiosqlite:///{back}", batch=2)
    assert not report.mismatched and max(c.source for c in report.counts) > 2
    assert await everything(f"sqlite+aiosqlite:///{back}") == await everything(
        f"sqlite+aiosqlite:///{first}"
    )

    def counters(path: Path) -> set[tuple[str, int]]:
        with sqlite3.connect(path) as connection:
            return set(connection.execute("SELECT name, seq FROM sqlite_sequence"))

    assert counters(back) == counters(first)
    assert ("journal", 0) not in counters(back)


def test_a_target_that_holds_rows_is_refused_unless_told(
    tmp_path: Path, pg_url: str, pg_url_2: str
) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path / 'pc.db'}"

    async def one_person(url: str, who: str) -> None:
        store = await open_store(url)
        async with store.session() as s:
            await s.load_state(UserKey("test", who), datetime.now(UTC))
        await store.close()

    asyncio.run(one_person(source, "alice"))
    asyncio.run(one_person(pg_url, "someone-else"))
    refused = copy(source, pg_url)
    assert refused.exit_code == 1
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is not empty (users 1, conversations 1)" in lines[0]
    assert "--replace" in lines[0]
    # Nothing of the source went in, nothing of the target went out.
    assert [row[2] for row in asyncio.run(everything(pg_url))["users"]] == ["someone-else"]

    replaced = copy(source, pg_url, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert [row[2] for row in asyncio.run(everything(pg_url))["users"]] == ["alice"]
    # A target that `db upgrade` prepared is empty: no flag needed.
    env = {"PAUSECHECK_TIMEZONE": "Europe/London", "PAUSECHECK_DATABASE_URL": pg_url_2}
    assert CliRunner().invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    assert copy(source, pg_url_2).exit_code == 0
    assert asyncio.run(everything(pg_url_2)) == asyncio.run(everything(source))
    # The same database is never both sides.
    same = copy(source, source)
    assert same.exit_code == 1 and "same database" in same.stderr
