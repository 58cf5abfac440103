"""A fresh PostgreSQL schema for one soak run, on the server the tests use
(`PAUSECHECK_TEST_POSTGRES_URL`, by default 127.0.0.1:5432/test): every worker's
connections see only it, so runs never share rows. Dropped after the run unless the
run's files are kept (`--workdir`)."""

from __future__ import annotations

import os
import uuid

from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEMA_PREFIX = "pc_soak_"


def server_url() -> str:
    return os.environ.get("PAUSECHECK_TEST_POSTGRES_URL", DEFAULT_URL)


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(_conninfo(url), autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql)


def new_schema(url: str, seed: int) -> tuple[str, str]:
    """(schema, URL whose connections see only it), the schema new and empty."""
    schema = f"{SCHEMA_PREFIX}{seed}_{uuid.uuid4().hex[:10]}"
    _admin(url, f'CREATE SCHEMA "{schema}"')
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, scoped.render_as_string(hide_password=False)


def drop_schema(url: str, schema: str) -> None:
    _admin(url, f"SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")
