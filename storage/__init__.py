"""SQLAlchemy implementation of `dialogs.store` (SQLite now, PostgreSQL-ready)."""

from storage.crypto import VariableCipher
from storage.errors import StorageError
from storage.migrate import upgrade_database
from storage.open import open_store
from storage.sql_store import SqlStore

__all__ = ["SqlStore", "StorageError", "VariableCipher", "open_store", "upgrade_database"]
