"""A private PostgreSQL schema per test, on the server named by PAUSECHECK_TEST_POSTGRES_URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REQUIRE_ENV = "PAUSECHECK_REQUIRE_POSTGRES"


def test_postgres_url() -> str:
    return os.environ.get("PAUSECHECK_TEST_POSTGRES_URL", DEFAULT_URL)


test_postgres_url.__test__ = False  # type: ignore[attr-defined]


def _conninfo(url: str) -> str:
    """The URL as libpq wants it (no `+psycopg`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


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


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections see only a new, empty schema; dropped afterwards."""
    import psycopg

    require_postgres()
    schema = f"pc_test_{uuid.uuid4().hex[:16]}"
    admin = _conninfo(test_postgres_url())
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(test_postgres_url()).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
