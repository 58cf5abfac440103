"""Alembic environment for the store.

Run from `storage.migrate.upgrade_database` with a shared connection in
`config.attributes["connection"]`, or from the alembic API/CLI with
`sqlalchemy.url` set, in which case it opens its own async engine.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from storage.engine import create_engine_for
from storage.errors import StorageError
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise StorageError("no database: pass a connection or set sqlalchemy.url")
    return url


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine_for(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


shared_connection = config.attributes.get("connection")
if isinstance(shared_connection, Connection):
    _run_on(shared_connection)
elif context.is_offline_mode():
    _run_offline(_url())
else:
    asyncio.run(_run_with_own_engine(_url()))
