"""The PostgreSQL cases skip where no server answers, and fail instead when required."""

from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.store import Profile, UserKey
from storage import open_store
from storage.engine import create_engine_for
from storage.migrate import alembic_config
from tests.postgres import (
    REQUIRE_ENV,
    _unreachable_reason,
    postgres_migrated_schema_url,
    require_postgres,
)

NOBODY = "postgresql+psycopg://postgres@127.0.0.1:1/test"


@pytest.fixture
def nobody_listening(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PAUSECHECK_TEST_POSTGRES_URL", NOBODY)
    _unreachable_reason.cache_clear()
    yield
    _unreachable_reason.cache_clear()


def test_an_unreachable_server_skips_with_the_reason(
    nobody_listening: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"not reachable at .*:1/test"):
        require_postgres()


def test_an_unreachable_server_fails_where_postgres_is_required(
    nobody_listening: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    # Caught by hand: a skip escaping here would pass as a skip, not fail the test.
    # (pytest's outcomes are BaseExceptions.)
    outcome: BaseException | None = None
    try:
        require_postgres()
    except BaseException as exc:
        outcome = exc
    assert isinstance(outcome, pytest.fail.Exception), outcome
    assert "not reachable" in str(outcome)


def test_a_migrated_schema_needs_the_server_too(
    nobody_listening: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    outcome: BaseException | None = None
    try:
        with postgres_migrated_schema_url():
            pass
    except BaseException as exc:
        outcome = exc
    assert isinstance(outcome, pytest.fail.Exception), outcome


async def test_a_migrated_schema_is_handed_out_again_only_emptied(clock: ManualClock) -> None:
    """Reused from test to test, so it must come back as just migrated: no rows, every
    sequence at its start, the migrations at head."""
    with postgres_migrated_schema_url() as url:
        store = await open_store(url, clock=clock)
        try:
            async with store.session() as s:
                await s.save_profile(UserKey("test", "left-behind"), Profile())
        finally:
            await store.close()
    with postgres_migrated_schema_url() as again:
        assert again == url  # the same schema, or this proved nothing
        engine = create_engine_for(again)
        try:
            async with engine.connect() as conn:
                for table in ("users", "deployment_secrets"):
                    assert (await conn.execute(sql(f"select count(*) from {table}"))).scalar() == 0
                version = (
                    await conn.execute(sql("select version_num from alembic_version"))
                ).scalar()
                assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
            store = await open_store(again, clock=clock)
            async with store.session() as s:
                await s.save_profile(UserKey("test", "next"), Profile())
            async with engine.connect() as conn:
                assert (await conn.execute(sql("select id from users"))).scalar() == 1
            await store.close()
        finally:
            await engine.dispose()
