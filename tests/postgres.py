"""A private PostgreSQL schema per test, on the server named by PAUSECHECK_TEST_POSTGRES_URL.

`postgres_schema_url` gives a new, empty schema (for tests of the migrations themselves);
`postgres_migrated_schema_url` one at the newest migration, holding no rows, for every
other test (see there for why it is reused).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from storage.migrate import alembic_config

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REQUIRE_ENV = "PAUSECHECK_REQUIRE_POSTGRES"
SCHEMA_PREFIX = "pc_test_"


def test_postgres_url() -> str:
    return os.environ.get("PAUSECHECK_TEST_POSTGRES_URL", DEFAULT_URL)


test_postgres_url.__test__ = False  # type: ignore[attr-defined]


def _conninfo(url: str) -> str:
    """The URL as libpq wants it (no `+psycopg`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _in_schema(schema: str) -> str:
    """The test server's URL, with connections that see only `schema`."""
    url = make_url(test_postgres_url()).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@cache
def _unreachable_reason() -> str | None:
    import psycopg

    try:
        psycopg.connect(_conninfo(test_postgres_url()), connect_timeout=3).close()
    except psycopg.Error as exc:
        where = make_url(test_postgres_url()).render_as_string(hide_password=True)
        return f"PostgreSQL not reachable at {where}: {str(exc).strip().splitlines()[0]}"
    return None


def require_postgres() -> None:
    """Skip (or, where PostgreSQL is required, fail) when the test server is not there."""
    reason = _unreachable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(_conninfo(test_postgres_url()), autocommit=True) as connection:
        connection.execute(sql)


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections see only a new, empty schema; dropped afterwards."""
    require_postgres()
    schema = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:16]}"
    _admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield _in_schema(schema)
    finally:
        _admin(f'DROP SCHEMA "{schema}" CASCADE')


# Migrated schemas no test is using, each emptied before it is handed out again, and
# every schema this process made (dropped when the session ends).
_idle: list[str] = []
_made: list[str] = []


def _new_migrated_schema() -> str:
    from alembic import command

    schema = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:16]}"
    _admin(f'CREATE SCHEMA "{schema}"')
    _made.append(schema)
    # Alembic on a synchronous connection: this runs inside the test's event loop.
    engine = create_engine(_in_schema(schema))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
    return schema


def _emptied(schema: str) -> None:
    """Every row gone (the migrations leave only alembic's version) and every sequence
    back at 1: what a schema just migrated holds."""
    import psycopg

    from storage.models import Base

    with psycopg.connect(_conninfo(_in_schema(schema))) as connection:
        # A test that leaked a connection holding a lock fails here, not silently later.
        connection.execute("SET lock_timeout = '5s'")
        with connection.pipeline():
            # Children first, so no foreign key is in the way.
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(f'DELETE FROM "{table.name}"')
            connection.execute(
                "SELECT setval(format('%%I.%%I', schemaname, sequencename), 1, false)"
                " FROM pg_sequences WHERE schemaname = %s",
                (schema,),
            )


@contextmanager
def postgres_migrated_schema_url() -> Iterator[str]:
    """A URL whose connections see only a schema at the newest migration, holding no
    rows, that no other test uses while this one runs.

    Running the migrations costs most of a second on PostgreSQL, several hundred times
    over for the engine suites, so a schema is migrated once and then handed to one
    test after another, emptied in between (rows deleted, sequences restarted: a few
    milliseconds). Tests given one may change rows, never the schema itself (those
    take `postgres_schema_url`)."""
    require_postgres()
    schema = _idle.pop() if _idle else _new_migrated_schema()
    _emptied(schema)
    yield _in_schema(schema)
    # Not when the body raised (a store that failed to open may have left anything):
    # such a schema stays out of use until the session drops it.
    _idle.append(schema)


def drop_made_schemas() -> None:
    """Drop every schema this process made (at the end of the session)."""
    import psycopg

    while _made:
        schema = _made.pop()
        try:
            # A connection a test leaked may still lock a table: give up rather than
            # hang the end of the run (the schema is left behind, named pc_test_...).
            _admin(f"SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")
        except psycopg.Error as exc:
            print(f"could not drop test schema {schema}: {str(exc).strip().splitlines()[0]}")
    _idle.clear()
