"""Keys that rotate without locking anyone out (issue 16, item 2; storage.keys,
storage.crypto): several keys, the start-up check, `keys rotate`, and rows no key
opens, which never stand between a person and the safety screen, /sos or /forget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import delete, select

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import ConversationState, Profile, UserKey
from storage import SqlStore, StorageError, VariableCipher, open_store
from storage.crypto import is_sealed
from storage.keys import rotate_keys
from storage.models import ConversationRow, DeploymentSecretRow, UserRow
from tests.conftest import Chat, make_engine

ALICE = UserKey("test", "u1")
SECRET = "he never listens when I bring up money"
STATE = ConversationState(flow_id="vent", node_id="ask", variables={"answer": SECRET})
CRISIS = "I want to kill myself"


def keys(n: int) -> list[str]:
    return [Fernet.generate_key().decode() for _ in range(n)]


async def write_alice(store: SqlStore, clock: ManualClock) -> None:
    async with store.session() as session:
        await session.save_state(ALICE, STATE, clock.now())
        await session.save_profile(
            ALICE, Profile(consent_at=clock.now(), adult=True, screened=True, crisis_at=clock.now())
        )


async def read_alice(store: SqlStore, clock: ManualClock) -> tuple[ConversationState, Profile]:
    async with store.session() as session:
        return await session.load_state(ALICE, clock.now()), await session.load_profile(ALICE)


async def test_the_first_key_seals_and_every_key_opens(
    database_url: str, clock: ManualClock
) -> None:
    old, new = keys(2)
    store = await open_store(database_url, clock=clock, encryption_keys=[old])
    await write_alice(store, clock)
    await store.close()
    # A new key goes first; the old one stays behind it: everything still opens.
    store = await open_store(database_url, clock=clock, encryption_keys=[new, old])
    try:
        state, profile = await read_alice(store, clock)
        assert state.variables == STATE.variables and profile.crisis_at == clock.now()
    finally:
        await store.close()


async def test_rotation_reseals_everything_under_the_first_key(
    database_url: str, clock: ManualClock
) -> None:
    old, new = keys(2)
    store = await open_store(database_url, clock=clock, encryption_keys=[old])
    await write_alice(store, clock)
    await store.close()
    store = await open_store(database_url, clock=clock, encryption_keys=[new, old])
    try:
        rotation = await rotate_keys(store.engine, VariableCipher([new, old]))
        assert rotation.unreadable == 0
        assert rotation.resealed >= 3  # variables, safety fields, the member secret
        again = await rotate_keys(store.engine, VariableCipher([new, old]))
        assert again.resealed == 0  # nothing left under the old key
    finally:
        await store.close()
    # The old key can go now.
    store = await open_store(database_url, clock=clock, encryption_keys=[new])
    try:
        state, profile = await read_alice(store, clock)
        assert state.variables == STATE.variables and profile.crisis_at == clock.now()
    finally:
        await store.close()


async def test_a_start_with_keys_that_open_nothing_stops_with_one_line(
    database_url: str, clock: ManualClock
) -> None:
    [written] = keys(1)
    store = await open_store(database_url, clock=clock, encryption_keys=[written])
    await write_alice(store, clock)
    await store.close()
    for wrong in (keys(1), keys(2), []):
        with pytest.raises(StorageError) as raised:
            await open_store(database_url, clock=clock, encryption_keys=wrong)
        message = str(raised.value)
        assert "\n" not in message
        assert "PAUSECHECK_ENCRYPTION_KEYS" in message
        assert written not in message
    # Also from the people's rows alone (a database from before the member secret).
    store = await open_store(database_url, clock=clock, encryption_keys=[written])
    async with store.engine.begin() as connection:
        await connection.execute(delete(DeploymentSecretRow))
    await store.close()
    with pytest.raises(StorageError, match="PAUSECHECK_ENCRYPTION_KEYS"):
        await open_store(database_url, clock=clock, encryption_keys=keys(1))


async def test_safety_sos_export_and_forget_never_depend_on_decrypting(
    database_url: str,
    clock: ManualClock,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    """The review's probe: rows written under one key, the guide restarted with
    another. Alice's rows open with no configured key (the deployment's own data
    does, so it starts); she is answered on every path, never 'something went wrong'."""
    lost, current = keys(2)
    store = await open_store(database_url, clock=clock, encryption_keys=[current])
    await store.close()
    # Alice's rows, written under a key since lost.
    store = await open_store(database_url, clock=clock, encryption_keys=[lost, current])
    await write_alice(store, clock)
    await store.close()
    store = await open_store(database_url, clock=clock, encryption_keys=[current])
    try:
        engine = make_engine(content, store, clock, safety_screen, resources)
        chat = Chat(engine, clock=clock)
        apology = content.copy.error_apology
        said = await chat.say(CRISIS)
        assert apology not in [m.text for m in said]
        assert "Thank you for telling me" in said[0].text  # the crisis flow, first
        said = await chat.command("sos")
        assert apology not in [m.text for m in said] and said
        exported = await chat.command("export")
        files = [m.attachment for m in exported if m.attachment is not None]
        assert len(files) == 1
        data = json.loads(files[0].data)
        assert "unreadable" not in json.dumps(data["conversation"]["variables"])  # reset
        await chat.command("forget")
        said = await chat.press("Yes, delete everything")
        assert apology not in [m.text for m in said]
        async with store.engine.connect() as connection:
            assert (await connection.scalar(select(UserRow.id))) is None
    finally:
        await store.close()


async def test_an_unreadable_row_is_reset_fail_safe(
    database_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    lost, current = keys(2)
    store = await open_store(database_url, clock=clock, encryption_keys=[current])
    await store.close()
    store = await open_store(database_url, clock=clock, encryption_keys=[lost, current])
    await write_alice(store, clock)
    async with store.session() as session:
        await session.save_profile(ALICE, Profile(consent_at=clock.now(), unsafe=False))
    await store.close()
    store = await open_store(database_url, clock=clock, encryption_keys=[current])
    try:
        state, profile = await read_alice(store, clock)
        # The conversation starts afresh; the danger flag counts as set until the
        # person says they are safe; both are logged.
        assert (state.flow_id, state.variables) == (None, {})
        assert profile.unsafe is True and profile.crisis_at is None
        assert "unreadable" in caplog.text
        rotation = await rotate_keys(
            store.engine, VariableCipher([current]), discard_unreadable=True
        )
        assert rotation.unreadable == rotation.discarded >= 2
        async with store.engine.connect() as connection:
            for value in (await connection.execute(select(ConversationRow.variables))).scalars():
                assert is_sealed(value)
    finally:
        await store.close()


async def test_the_member_secret_is_sealed_with_a_key(
    database_url: str, clock: ManualClock
) -> None:
    [key] = keys(1)
    store = await open_store(database_url, clock=clock, encryption_keys=[key])
    try:
        async with store.engine.connect() as connection:
            rows = (await connection.execute(select(DeploymentSecretRow))).all()
    finally:
        await store.close()
    assert {row.name for row in rows} == {"member"}
    assert all(is_sealed(row.value) for row in rows)


def test_pausecheck_keys_rotate_from_the_command_line(tmp_path: Path) -> None:
    from tests.test_console import ONBOARD, run_cli

    old, new, lost_replacement = keys(3)
    talk = "/pause\n" + ONBOARD + "done\n"
    assert run_cli(["console"], talk, tmp_path, PAUSECHECK_ENCRYPTION_KEYS=old).returncode == 0
    # The new key first, the old one behind it; rotate; then the old key can go.
    both = f"{new},{old}"
    rotated = run_cli(["keys", "rotate"], "", tmp_path, PAUSECHECK_ENCRYPTION_KEYS=both)
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted under the first key" in rotated.stdout
    alone = run_cli(["console"], "/help\n", tmp_path, PAUSECHECK_ENCRYPTION_KEYS=new)
    assert alone.returncode == 0, alone.stderr
    # A lost key: the guide will not start, and says why in one line...
    stopped = run_cli(["console"], "", tmp_path, PAUSECHECK_ENCRYPTION_KEYS=lost_replacement)
    assert stopped.returncode == 1
    assert "PAUSECHECK_ENCRYPTION_KEYS" in stopped.stderr and "Traceback" not in stopped.stderr
    assert lost_replacement not in stopped.stderr and new not in stopped.stderr
    # ...until the operator chooses to reset what the lost key sealed.
    env = {"PAUSECHECK_ENCRYPTION_KEYS": lost_replacement}
    refused = run_cli(["keys", "rotate"], "", tmp_path, **env)
    assert refused.returncode == 1
    reset = run_cli(["keys", "rotate", "--discard-unreadable"], "", tmp_path, **env)
    assert reset.returncode == 0, reset.stderr
    again = run_cli(["console"], "/help\n", tmp_path, **env)
    assert again.returncode == 0, again.stderr
