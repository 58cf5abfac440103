"""Data at rest (issue 16, item 8): with a key, the crisis time, the danger flag and
who joined which group reflection are sealed too; a /forget or cleared free text
leaves no readable trace in the database file or its WAL; the files are private."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select, text

from dialogs.clock import ManualClock
from dialogs.reflection.store import ReflectionAnswer
from dialogs.store import ConversationState, Profile, UserKey
from storage import SqlStore, open_store
from storage.crypto import is_sealed
from storage.models import ReflectionAnswerRow, ReflectionParticipantRow, UserRow

ANN = UserKey("telegram", "7310045")
MOD = UserKey("telegram", "7310046")
WORDS = "a-very-distinctive-answer-about-the-kitchen"


def url_in(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'pc.db'}"


def on_disk(directory: Path) -> bytes:
    """The database file and SQLite's files beside it, as bytes."""
    return b"".join(p.read_bytes() for p in sorted(directory.glob("pc.db*")))


async def crisis_and_a_reflection(store: SqlStore, clock: ManualClock) -> None:
    now = clock.now()
    async with store.session() as session:
        await session.save_profile(ANN, Profile(consent_at=now, crisis_at=now, unsafe=True))
        reflection = await session.create_reflection(
            token="tok",
            platform="telegram",
            chat_id="-100",
            reflection_id="noticing",
            facilitator=MOD,
            minutes=3,
            at=now,
        )
        assert await session.add_participant(reflection.id, ANN, "ann-chat", now)
        await session.save_answer(
            reflection.id, ReflectionAnswer(ANN, "alarm", None, WORDS, "space", False, False, now)
        )


async def test_with_a_key_safety_fields_and_membership_are_sealed(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = await open_store(
        url_in(tmp_path), clock=clock, encryption_keys=[Fernet.generate_key().decode()]
    )
    try:
        await crisis_and_a_reflection(store, clock)
        async with store.engine.connect() as connection:
            user = (await connection.execute(select(UserRow).where(UserRow.id == 1))).one()
            participants = (await connection.execute(select(ReflectionParticipantRow))).all()
            answers = (await connection.execute(select(ReflectionAnswerRow))).all()
        # The plain columns say nothing; the sealed one holds both.
        assert (user.crisis_at, user.unsafe) == (None, False)
        assert is_sealed(user.sealed)
        # Nothing in the reflection rows names Ann, in the clear or as her row id.
        for row in (*participants, *answers):
            assert ANN.user_id not in repr(tuple(row))
            assert "ann-chat" not in repr(tuple(row))
            assert WORDS not in repr(tuple(row))
        assert all(is_sealed(p.sealed) for p in participants)
        # ...and the guide still reads all of it.
        async with store.session() as session:
            profile = await session.load_profile(ANN)
            assert profile.crisis_at == clock.now() and profile.unsafe
            [person] = await session.participants(1)
            assert (person.user, person.chat_id) == (ANN, "ann-chat")
            assert [s.token for s in await session.reflections_joined(ANN)] == ["tok"]
    finally:
        await store.close()


async def test_without_a_key_nothing_changes_for_the_safety_fields(
    store: SqlStore, clock: ManualClock
) -> None:
    await crisis_and_a_reflection(store, clock)
    async with store.engine.connect() as connection:
        user = (await connection.execute(select(UserRow).where(UserRow.id == 1))).one()
    assert user.unsafe is True and user.sealed is None


async def test_forget_and_cleared_text_leave_nothing_in_the_file_or_its_wal(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = await open_store(url_in(tmp_path), clock=clock)
    try:
        async with store.engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA secure_delete")).scalar() == 1
        await crisis_and_a_reflection(store, clock)
        state = ConversationState(flow_id="vent", node_id="ask", variables={"said": WORDS})
        async with store.session() as session:
            await session.save_state(MOD, state, clock.now())
        raw = on_disk(tmp_path)
        assert WORDS.encode() in raw  # it was there
        async with store.session() as session:
            await session.forget_user(ANN)
        # The facilitator's flow ends: their free text is cleared.
        clock.advance(timedelta(minutes=1))
        async with store.session() as session:
            await session.open_event("e1", clock.now(), MOD)
            await session.save_turn(MOD, ConversationState(), Profile(), clock.now())
        raw = on_disk(tmp_path)
        assert WORDS.encode() not in raw
        assert b"ann-chat" not in raw
    finally:
        await store.close()


async def test_the_data_directory_and_database_are_private(
    tmp_path: Path, clock: ManualClock
) -> None:
    data = tmp_path / "data"
    store = await open_store(url_in(data), clock=clock)
    try:
        async with store.session() as session:
            await session.save_profile(ANN, Profile(consent_at=clock.now()))
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        files = list(data.glob("pc.db*"))
        assert {f.name for f in files} >= {"pc.db", "pc.db-wal"}
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
    finally:
        await store.close()


async def test_an_older_database_file_is_made_private_at_start(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = await open_store(url_in(tmp_path), clock=clock)
    await store.close()
    (tmp_path / "pc.db").chmod(0o644)
    store = await open_store(url_in(tmp_path), clock=clock)
    try:
        async with store.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        assert stat.S_IMODE((tmp_path / "pc.db").stat().st_mode) == 0o600
    finally:
        await store.close()


def test_every_connection_asks_for_secure_delete_whatever_sqlite_defaults_to(
    tmp_path: Path,
) -> None:
    """Debian's SQLite deletes securely by default; other builds do not, so the store
    asks on every connection. The hook is run here on a recording stand-in."""
    from storage.engine import create_engine_for

    executed: list[str] = []

    class Cursor:
        def execute(self, statement: str) -> None:
            executed.append(statement)

        def close(self) -> None:
            pass

    class Connection:
        isolation_level: str | None = ""

        def cursor(self) -> Cursor:
            return Cursor()

    engine = create_engine_for(url_in(tmp_path))
    ours = [
        listener
        for listener in engine.sync_engine.pool.dispatch.connect
        if "_install_sqlite_hooks" in getattr(listener, "__qualname__", "")
    ]
    assert ours
    for listener in ours:
        listener(Connection(), None)
    assert "PRAGMA secure_delete=ON" in executed


async def test_words_repeated_in_a_message_leave_no_file_once_it_is_sent(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A message that repeats typed words (the space flow's ready-to-send text) is
    written in the turn that clears them: the words leave the files once it is marked,
    also when a crash left it for the next process to send."""
    from dialogs.events import Address, Outbound
    from dialogs.store import OutboundStatus

    person = UserKey("console", "ann")
    address = Address("console", "ann", "ann", True)
    store = await open_store(url_in(tmp_path), clock=clock)
    try:
        typed = ConversationState(flow_id="space", node_id="tone", variables={"when": WORDS})
        async with store.session() as session:
            await session.save_state(person, typed, clock.now())
        async with store.session() as session:
            await session.open_event("e1", clock.now(), person)
            rows = await session.enqueue_outbound(
                person, address, [Outbound(f"I'll be back {WORDS}.")], clock.now()
            )
            await session.save_turn(person, ConversationState(), Profile(), clock.now())
    finally:
        await store.close()  # killed before the message was marked sent
    assert WORDS.encode() in on_disk(tmp_path)  # owed, so still kept
    store = await open_store(url_in(tmp_path), clock=clock)
    try:
        clock.advance(timedelta(seconds=1))
        taken = await store.claim_unsent(
            clock.now(), timedelta(seconds=30), ["console"], startup=True
        )
        assert [row.id for row in taken] == [row.id for row in rows]
        await store.mark_outbound([(rows[0].id, OutboundStatus.SENT, None)], clock.now())
        assert WORDS.encode() not in on_disk(tmp_path)
    finally:
        await store.close()
