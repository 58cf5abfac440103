"""Opening a ready-to-use store from a URL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.clock import Clock, SystemClock
from storage.crypto import UnreadableData, VariableCipher
from storage.engine import create_engine_for, restrict_files
from storage.errors import StorageError
from storage.keys import check_keys
from storage.membership import (
    MEMBER_SECRET,
    SESSION_INFO_KEY,
    USER_REF_SECRET,
    deployment_secret,
)
from storage.migrate import upgrade_database
from storage.sql_store import SqlStore


async def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    encryption_key: str | None = None,
    encryption_keys: Sequence[str] = (),
) -> SqlStore:
    """Create the engine, migrate the schema to head, check the keys against what is
    stored, and return the store.

    With `encryption_keys` (Fernet keys, the first encrypts; or the older single
    `encryption_key`), what says most about a person is encrypted at rest
    (storage.crypto). Raises `StorageError` with one line when the keys open nothing
    of the sealed data stored.
    """
    keys = list(encryption_keys) or ([encryption_key] if encryption_key is not None else [])
    # Before the engine exists: a bad key must fail fast and leave nothing to dispose.
    cipher = VariableCipher(keys) if keys else None
    engine = create_engine_for(url)
    try:
        await upgrade_database(engine)
        restrict_files(engine)
        await check_keys(engine, cipher)
        store = SqlStore(engine, clock=clock, cipher=cipher)
        async with engine.begin() as connection, AsyncSession(bind=connection) as session:
            member = await deployment_secret(
                session, MEMBER_SECRET, cipher, (clock or SystemClock()).now(), sealed=True
            )
            await session.flush()
    except DBAPIError as exc:
        await engine.dispose()
        where = make_url(url).render_as_string(hide_password=True)
        raise StorageError(f"cannot open database {where}: {exc.orig}") from exc
    except UnreadableData as exc:
        await engine.dispose()
        raise StorageError(f"{exc} (the deployment's member secret)") from exc
    except BaseException:
        await engine.dispose()
        raise
    # Every session of the store finds the member secret in its `info`
    # (storage.membership.session_member_tag): nothing to decrypt per event.
    store._sessions.configure(info={SESSION_INFO_KEY: member})
    return store


async def stored_user_ref_secret(store: SqlStore, clock: Clock | None = None) -> bytes:
    """The key of the user references in logs that this deployment made for itself on
    first start (when `PAUSECHECK_USER_REF_SECRET` is not set), the same on every start
    and in every process sharing the database."""
    async with store.engine.begin() as connection, AsyncSession(bind=connection) as session:
        secret = await deployment_secret(
            session, USER_REF_SECRET, None, (clock or SystemClock()).now(), sealed=False
        )
        await session.flush()
    return secret
