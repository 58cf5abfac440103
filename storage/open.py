"""Opening a ready-to-use store from a URL."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from dialogs.clock import Clock
from storage.crypto import VariableCipher
from storage.engine import create_engine_for
from storage.errors import StorageError
from storage.migrate import upgrade_database
from storage.sql_store import SqlStore


async def open_store(
    url: str, *, clock: Clock | None = None, encryption_key: str | None = None
) -> SqlStore:
    """Create the engine, migrate the schema to head and return the store.

    With `encryption_key` (a Fernet key), conversation variables are encrypted at rest.
    """
    # Before the engine exists: a bad key must fail fast and leave nothing to dispose.
    cipher = None if encryption_key is None else VariableCipher(encryption_key)
    engine = create_engine_for(url)
    try:
        await upgrade_database(engine)
    except DBAPIError as exc:
        await engine.dispose()
        where = make_url(url).render_as_string(hide_password=True)
        raise StorageError(f"cannot open database {where}: {exc.orig}") from exc
    return SqlStore(engine, clock=clock, cipher=cipher)
