import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import upgrade_database
from storage.engine import create_engine_for
from storage.migrate import alembic_config
from storage.models import Base


@pytest.fixture
def engine(fresh_engine: AsyncEngine) -> AsyncEngine:
    """These tests check the migrations and change the schema (an index dropped, a
    downgrade): a database migrated for each, never the shared emptied schema."""
    return fresh_engine


def _json_default_differs(
    context: MigrationContext,
    inspected_column: Any,
    metadata_column: Any,
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    # Alembic compares server defaults on PostgreSQL by asking the server whether they
    # are equal, and `json` has no equality operator: compare the text instead
    # ('{}'::json as reflected against '{}'). None: Alembic's own comparison.
    if context.dialect.name != "postgresql" or not isinstance(metadata_column.type, JSON):
        return None
    reflected = re.sub(r"::json$", "", inspected_default or "")
    return reflected != (rendered_metadata_default or "")


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": _json_default_differs}
    )
    diff: list[Any] = compare_metadata(context, Base.metadata)
    return diff


async def test_migrations_produce_exactly_the_models_schema(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        assert await connection.run_sync(_diff) == []


def _normalised(sql: str | None) -> str | None:
    # ALTER TABLE ADD COLUMN and batch mode's table rename change only the layout of
    # the stored DDL (whitespace, quoted names), never its meaning.
    if sql is None:
        return None
    return re.sub(r"\s+", " ", sql).replace('"', "")


async def _sqlite_ddl(engine: AsyncEngine) -> list[tuple[str, str, str | None]]:
    async with engine.connect() as connection:
        rows = await connection.exec_driver_sql(
            "SELECT type, name, sql FROM sqlite_master"
            " WHERE tbl_name != 'alembic_version' ORDER BY name"
        )
        return [(row.type, row.name, _normalised(row.sql)) for row in rows]


async def test_migrated_ddl_is_identical_to_create_all(engine: AsyncEngine) -> None:
    # Also covers what compare_metadata ignores: AUTOINCREMENT, ON DELETE, defaults.
    if engine.dialect.name != "sqlite":
        pytest.skip("compares SQLite's stored DDL; on PostgreSQL compare_metadata covers it")
    fresh = create_engine_for("sqlite+aiosqlite:///:memory:")
    try:
        async with fresh.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        assert await _sqlite_ddl(engine) == await _sqlite_ddl(fresh)
    finally:
        await fresh.dispose()


async def test_a_missing_index_would_be_reported(engine: AsyncEngine) -> None:
    # Guards the test above against comparing nothing at all.
    async with engine.begin() as connection:
        await connection.exec_driver_sql("DROP INDEX ix_followups_status_due_at")
    async with engine.connect() as connection:
        diff = await connection.run_sync(_diff)
    assert [entry[0] for entry in diff] == ["add_index"]


async def test_upgrade_is_idempotent(engine: AsyncEngine) -> None:
    await upgrade_database(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(_diff) == []


async def test_downgrade_removes_every_table(engine: AsyncEngine) -> None:
    def downgrade(connection: Connection) -> list[str]:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
        return inspect(connection).get_table_names()

    async with engine.begin() as connection:
        assert await connection.run_sync(downgrade) == ["alembic_version"]


def test_alembic_api_without_a_shared_connection_opens_its_own_engine(tmp_path: Path) -> None:
    # The path `alembic upgrade` takes: no running loop, env.py starts one.
    path = tmp_path / "cli.db"
    command.upgrade(alembic_config(f"sqlite+aiosqlite:///{path}"), "head")
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"users", "conversations", "journal", "followups", "processed_events"} <= tables


def test_offline_mode_renders_sql(capsys: pytest.CaptureFixture[str]) -> None:
    command.upgrade(alembic_config("sqlite+aiosqlite:///unused.db"), "head", sql=True)
    assert "CREATE TABLE followups" in capsys.readouterr().out
