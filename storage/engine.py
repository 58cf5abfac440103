"""Engine construction, including the SQLite settings the store relies on."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from storage.errors import StorageError
from storage.one_hop_sqlite import one_hop_module

_SQLITE_HEADER = b"SQLite format 3\x00"
# Who may read the database and what is exported from it: the guide's own user only.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
log = logging.getLogger(__name__)

# aiosqlite logs every statement with its parameters (user ids, people's answers) at
# DEBUG, so turning on DEBUG for the app would write them to the logs. Quieted the
# way SQLAlchemy quiets its own loggers: only when nobody configured it explicitly.
_AIOSQLITE_LOG = logging.getLogger("aiosqlite")
if _AIOSQLITE_LOG.level == logging.NOTSET:
    _AIOSQLITE_LOG.setLevel(logging.INFO)


def create_engine_for(url: str) -> AsyncEngine:
    """An async engine for `url`; SQLite file databases get their directory created."""
    parsed = make_url(url)
    # Parameters hold personal data: keep them out of SQL logging and out of the
    # text of database errors, which end up in logs and tracebacks.
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    in_memory = _is_memory(parsed)
    # One thread hand-off per statement instead of four (storage.one_hop_sqlite).
    driver: dict[str, Any] = (
        {"module": one_hop_module()} if parsed.get_driver_name() == "aiosqlite" else {}
    )
    if in_memory:
        # Every session must see the same private database, so they share one connection.
        engine = create_async_engine(parsed, poolclass=StaticPool, hide_parameters=True, **driver)
    else:
        _prepare_file(Path(parsed.database or ""))
        engine = create_async_engine(parsed, hide_parameters=True, **driver)
    _install_sqlite_hooks(engine, wal=not in_memory)
    return engine


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _prepare_file(path: Path) -> None:
    """The database's directory (created 0700: only the guide's user may list it) and
    an empty database file (0600, which SQLite copies to its -wal and -shm files)."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask; chmod is not.
            path.parent.chmod(PRIVATE_DIR)
    except OSError as exc:
        raise StorageError(f"cannot create the directory for database {path}: {exc}") from exc
    if path.is_dir():
        raise StorageError(f"database path {path} is a directory")
    if not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        except FileExistsError:
            pass  # another process made it first
        except OSError as exc:
            raise StorageError(f"cannot create database {path}: {exc}") from exc
        return
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StorageError(f"cannot read database {path}: {exc}") from exc
    # An empty file is what SQLite creates before the first write; anything else
    # without the magic header would fail later with a message that hides the path.
    if header and header != _SQLITE_HEADER:
        raise StorageError(f"{path} is not an SQLite database (corrupt or another kind of file)")
    # Reading would work and the first write fail, mid-conversation: say so now.
    for where in (path, path.parent):
        if not os.access(where, os.W_OK):
            raise StorageError(
                f"database {path} is read-only ({where} cannot be written); the guide "
                "writes to it and keeps its -wal and -shm files beside it: make both "
                "writable by this user"
            )


_NO_TRANSACTION = "pausecheck_no_transaction"


async def checkpoint_wal(engine: AsyncEngine) -> None:
    """Copy SQLite's write-ahead log into the database file and truncate it: after a
    /forget or cleared free text, the old pages are then gone from the WAL too (and,
    with secure_delete, zeroed in the file). Nothing to do elsewhere."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or _is_memory(url):
        return
    async with engine.connect() as connection:
        quiet = await connection.execution_options(**{_NO_TRANSACTION: True})
        result = await quiet.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        busy = result.one()[0]
        if busy:
            log.info("WAL checkpoint deferred: the database was busy")


def restrict_files(engine: AsyncEngine) -> None:
    """The database file and SQLite's -wal and -shm beside it: 0600, also for a
    database made before the guide did this."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or _is_memory(url):
        return
    path = Path(url.database or "")
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if each.exists() and each.stat().st_mode & 0o777 != PRIVATE_FILE:
                each.chmod(PRIVATE_FILE)
        except OSError as exc:
            log.warning("cannot restrict %s to 0600: %s", each.name, type(exc).__name__)


def _install_sqlite_hooks(engine: AsyncEngine, *, wal: bool) -> None:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver so that on_begin decides how it is issued.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # Before journal_mode: switching to WAL itself may have to wait for a lock.
            cursor.execute("PRAGMA busy_timeout=5000")
            if wal:
                # Readers no longer block the writer; meaningless for :memory:.
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Deleted rows are overwritten with zeros, not left readable in free pages
            # of the file (a /forget, a cleared answer).
            cursor.execute("PRAGMA secure_delete=ON")
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(_NO_TRANSACTION):
            return  # a statement SQLite runs only outside a transaction (checkpoint_wal)
        # Taking the write lock up front makes concurrent writers queue on busy_timeout;
        # a deferred transaction that reads first and then writes fails instead with
        # "database is locked" when another writer got there in between.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "begin", on_begin)
