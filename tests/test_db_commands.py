"""`pausecheck db upgrade` and `pausecheck db check` on SQLite and PostgreSQL.

`db upgrade` makes what is missing (an SQLite file and its directory; the tables of an
empty PostgreSQL schema); `db check` is a readiness probe that changes nothing: exit 0
when the database answers and is at the newest migration, else one line and exit 1
(a wrong setting is exit 2, as for every command: tests/test_bad_settings.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from bot.cli import app
from storage.readiness import head_revision
from tests.postgres import postgres_schema_url


def db(command: str, url: str) -> Result:
    env = {"PAUSECHECK_DATABASE_URL": url, "PAUSECHECK_TIMEZONE": "Europe/London"}
    return CliRunner().invoke(app, ["db", command], env=env)


def one_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


def psql(url: str, statement: str) -> None:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(statement)


def test_upgrade_makes_a_missing_sqlite_file_and_directory_and_check_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "not" / "there" / "pc.db"
    url = f"sqlite+aiosqlite:///{path}"
    before = db("check", url)
    assert before.exit_code == 1
    assert one_line(before) == (
        f"pausecheck: database {path} does not exist yet: run pausecheck db upgrade"
    )
    # A probe makes nothing.
    assert not path.parent.exists()

    upgraded = db("upgrade", url)
    assert upgraded.exit_code == 0, upgraded.output
    assert path.is_file()
    after = db("check", url)
    assert after.exit_code == 0, after.output
    assert f"at migration {head_revision()}" in after.stdout


def test_upgrade_fills_an_empty_postgresql_schema(pg_url: str) -> None:
    before = db("check", pg_url)
    assert before.exit_code == 1
    assert one_line(before).endswith("the database has no tables yet: run pausecheck db upgrade")
    upgraded = db("upgrade", pg_url)
    assert upgraded.exit_code == 0, upgraded.output
    assert db("check", pg_url).exit_code == 0
    # Twice is harmless.
    assert db("upgrade", pg_url).exit_code == 0


def test_check_names_a_schema_behind_the_newest_migration(pg_url: str) -> None:
    assert db("upgrade", pg_url).exit_code == 0
    psql(pg_url, "UPDATE alembic_version SET version_num = '0008'")
    result = db("check", pg_url)
    assert result.exit_code == 1
    assert one_line(result).endswith(
        f"the database is at migration 0008, the newest is {head_revision()}: "
        "run pausecheck db upgrade"
    )


def test_check_names_a_migration_this_version_does_not_know(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pc.db'}"
    assert db("upgrade", url).exit_code == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "pc.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    result = db("check", url)
    assert result.exit_code == 1
    assert "migration 9999, which this version of pausecheck does not know" in one_line(result)


def test_check_says_in_one_line_that_postgresql_cannot_be_reached() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    url = "postgresql+psycopg://guide:s3cret-pw@127.0.0.1:1/pausecheck"
    result = db("check", url)
    assert result.exit_code == 1
    line = one_line(result)
    assert line.startswith("pausecheck: cannot reach database postgresql+psycopg://guide:***@")
    assert "s3cret-pw" not in result.output


def test_check_names_a_postgresql_database_that_does_not_exist(pg_url: str) -> None:
    url = make_url(pg_url).set(database="pc_no_such_database").render_as_string(False)
    result = db("check", url)
    assert result.exit_code == 1
    assert 'database "pc_no_such_database" does not exist' in one_line(result)
