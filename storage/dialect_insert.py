"""INSERT … ON CONFLICT, which SQLAlchemy only offers per dialect."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from storage.errors import StorageError

ConflictInsert = sqlite.Insert | postgresql.Insert


def insert_for(dialect_name: str, entity: Any) -> ConflictInsert:
    """An INSERT for `entity` that supports `on_conflict_do_nothing/update`.

    Conflicts are resolved by the database rather than by catching IntegrityError,
    which would abort the surrounding PostgreSQL transaction.
    """
    if dialect_name == "sqlite":
        return sqlite.insert(entity)
    if dialect_name == "postgresql":
        return postgresql.insert(entity)
    raise StorageError(f"unsupported database dialect {dialect_name!r}")
