"""Storage fixtures: every test that takes `engine`, `store`, `fresh_engine` or
`database_url` runs once on SQLite and once on PostgreSQL (a schema no other test uses
meanwhile: see each fixture).

The PostgreSQL server is `PAUSECHECK_TEST_POSTGRES_URL` (default below). Where it is not
reachable the PostgreSQL cases skip with the reason; with `PAUSECHECK_REQUIRE_POSTGRES=1`
(CI sets it in .ci/run) they fail instead, so a run that skipped them cannot pass."""

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.clock import ManualClock
from storage import SqlStore, upgrade_database
from storage.engine import create_engine_for
from tests.postgres import postgres_migrated_schema_url, postgres_schema_url

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A URL of an empty database: an SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'pc.db'}"
        return
    with postgres_schema_url() as url:
        yield url


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[AsyncEngine]:
    """A migrated database holding no rows: in-memory SQLite, or a PostgreSQL schema
    migrated once per session and emptied before each test (tests/postgres.py; a
    migration costs most of a second there). Tests that change or check the schema
    itself take `fresh_engine`."""
    if request.param == "sqlite":
        engine = create_engine_for("sqlite+aiosqlite:///:memory:")
        await upgrade_database(engine)
        yield engine
        await engine.dispose()
        return
    with postgres_migrated_schema_url() as url:
        engine = create_engine_for(url)
        try:
            yield engine
        finally:
            await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def fresh_engine(request: pytest.FixtureRequest) -> AsyncIterator[AsyncEngine]:
    """A database this test's own upgrade just migrated: in-memory SQLite, or a new
    PostgreSQL schema, dropped afterwards."""
    if request.param == "sqlite":
        engine = create_engine_for("sqlite+aiosqlite:///:memory:")
        await upgrade_database(engine)
        yield engine
        await engine.dispose()
        return
    with postgres_schema_url() as url:
        engine = create_engine_for(url)
        try:
            await upgrade_database(engine)
            yield engine
        finally:
            await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine, clock: ManualClock) -> SqlStore:
    return SqlStore(engine, clock=clock)
