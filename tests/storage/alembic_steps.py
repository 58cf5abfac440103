"""Running Alembic on a connection a test holds (the migration tests' one step)."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from sqlalchemy.engine import Connection

from storage.migrate import alembic_config


def migrate_to(revision: str, *, down: bool = False) -> Callable[[Connection], None]:
    """For `connection.run_sync`: upgrade (or, `down`, downgrade) to `revision`."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    return run
