"""Applying the Alembic migrations in `storage/migrations` without an alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """Config for the `alembic` API; `url` is only needed when env.py opens its own engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # Config values go through configparser interpolation, where % is special.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade_database(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision, in one transaction on `engine`."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_to_head)


def _upgrade_to_head(connection: Connection) -> None:
    config = alembic_config()
    # env.py runs on this connection instead of starting its own event loop, which
    # would fail because we are already inside one.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
