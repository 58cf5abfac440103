import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.clock import ManualClock
from dialogs.store import ConversationState, UserKey
from storage import SqlStore, StorageError, VariableCipher, open_store
from storage.crypto import encode_variables

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ALICE = UserKey("telegram", "alice")
SECRET = "he never listens when I bring up money"
STATE = ConversationState(flow_id="vent", node_id="ask", variables={"answer": SECRET, "n": 7})


def _store(engine: AsyncEngine, clock: ManualClock, key: bytes | None) -> SqlStore:
    cipher = None if key is None else VariableCipher(key.decode())
    return SqlStore(engine, clock=clock, cipher=cipher)


async def _save(store: SqlStore) -> None:
    async with store.session() as session:
        await session.save_state(ALICE, STATE, T0)


async def _load(store: SqlStore) -> ConversationState:
    async with store.session() as session:
        return await session.load_state(ALICE, T0)


async def _raw_variables(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        raw = await connection.exec_driver_sql("SELECT CAST(variables AS TEXT) FROM conversations")
        return str(raw.scalar_one())


async def test_with_a_key_variables_are_unreadable_at_rest(
    engine: AsyncEngine, clock: ManualClock
) -> None:
    store = _store(engine, clock, Fernet.generate_key())
    await _save(store)
    raw = await _raw_variables(engine)
    assert "money" not in raw
    assert "answer" not in raw
    assert list(json.loads(raw)) == ["_enc"]
    assert (await _load(store)).variables == STATE.variables
    async with store.session() as session:
        exported = await session.export_user(ALICE)
    assert exported["conversation"]["variables"] == {"answer": SECRET, "n": 7}


async def test_without_a_key_variables_are_plain_json(
    engine: AsyncEngine, clock: ManualClock
) -> None:
    store = _store(engine, clock, None)
    await _save(store)
    assert json.loads(await _raw_variables(engine)) == {"answer": SECRET, "n": 7}
    assert (await _load(store)).variables == STATE.variables


async def test_encrypted_data_without_the_key_is_reset_not_an_error(
    engine: AsyncEngine, clock: ManualClock
) -> None:
    # (open_store refuses to start like this; see tests/storage/test_keys.py.) A row
    # no key opens never stops the person from being answered: it starts afresh.
    await _save(_store(engine, clock, Fernet.generate_key()))
    keyless = _store(engine, clock, None)
    assert (await _load(keyless)).variables == {}
    async with keyless.session() as session:
        exported = await session.export_user(ALICE)
    assert "unreadable" in exported["conversation"]["variables"]


async def test_encrypted_data_with_the_wrong_key_is_reset_not_an_error(
    engine: AsyncEngine, clock: ManualClock
) -> None:
    await _save(_store(engine, clock, Fernet.generate_key()))
    state = await _load(_store(engine, clock, Fernet.generate_key()))
    assert (state.flow_id, state.variables) == (None, {})


async def test_plain_data_is_read_with_a_key_and_sealed_on_the_next_save(
    engine: AsyncEngine, clock: ManualClock
) -> None:
    await _save(_store(engine, clock, None))
    keyed = _store(engine, clock, Fernet.generate_key())
    assert (await _load(keyed)).variables == STATE.variables
    await _save(keyed)
    assert "money" not in await _raw_variables(engine)


def test_a_variable_named_like_the_marker_is_refused() -> None:
    with pytest.raises(ValueError, match="_enc"):
        encode_variables({"_enc": "x"}, None)


@pytest.mark.parametrize("key", ["", "not-a-key", "x" * 44, "é" * 44])
def test_an_invalid_key_names_the_setting_and_how_to_make_one(key: str) -> None:
    with pytest.raises(StorageError) as raised:
        VariableCipher(key)
    message = str(raised.value)
    assert "PAUSECHECK_ENCRYPTION_KEY" in message
    assert "Fernet.generate_key().decode()" in message


async def test_open_store_with_an_invalid_key_fails_before_touching_the_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite"
    with pytest.raises(StorageError, match="PAUSECHECK_ENCRYPTION_KEY"):
        await open_store(f"sqlite+aiosqlite:///{path}", encryption_key="nope")
    assert not path.exists()


async def test_open_store_encrypts_with_the_given_key(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    key = Fernet.generate_key().decode()
    store = await open_store(url, encryption_key=key)
    try:
        await _save(store)
    finally:
        await store.close()
    assert "money" not in (tmp_path / "db.sqlite").read_bytes().decode("latin-1")
    for wrong in (None, Fernet.generate_key().decode()):
        # Stops at start, with one line naming the setting.
        with pytest.raises(StorageError, match="PAUSECHECK_ENCRYPTION_KEYS"):
            await open_store(url, encryption_key=wrong)
    again = await open_store(url, encryption_key=key)
    try:
        assert (await _load(again)).variables == STATE.variables
    finally:
        await again.close()
