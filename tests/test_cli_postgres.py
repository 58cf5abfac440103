"""Every command works on PostgreSQL (issue 19, item 1): each command that opens the
database runs here, or in the test named below, with PAUSECHECK_DATABASE_URL on the
real server (a schema of its own); the others never open it, which they prove by
working with a database that cannot be reached.

- `console`, `keys rotate`: here (the real entry point, a subprocess);
- `db upgrade`, `db check`: tests/test_db_commands.py; `db copy`: tests/test_db_copy.py
  and tests/test_deploy_doc.py;
- `run`: tests/telegram/test_graceful_stop.py (and the webhook workers' tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.postgres import postgres_schema_url
from tests.test_bad_settings import COMMANDS
from tests.test_console import ONBOARD, run_cli

OPENS_THE_DATABASE = {"console", "run", "db upgrade", "db check", "db copy", "keys rotate"}
NEVER_OPENS_IT = {"content check", "content eval", "content transcript", "content graph"}
# Nothing listens on port 1: any attempt to connect fails at once.
UNREACHABLE = "postgresql+psycopg://guide:pw@127.0.0.1:1/pausecheck"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


def test_every_command_is_placed() -> None:
    names = {" ".join(c[:2]) if c[0] in ("content", "db", "keys") else c[0] for c in COMMANDS}
    assert names == OPENS_THE_DATABASE | NEVER_OPENS_IT


def test_the_console_keeps_its_conversation_in_postgresql(tmp_path: Path, pg_url: str) -> None:
    first = run_cli(
        ["console"], "/pause\n" + ONBOARD + "7\n", tmp_path, PAUSECHECK_DATABASE_URL=pg_url
    )
    assert first.returncode == 0, first.stderr
    assert "What set it off?" in first.stdout
    second = run_cli(["console"], "silence\n", tmp_path, PAUSECHECK_DATABASE_URL=pg_url)
    assert second.returncode == 0, second.stderr
    assert "Here's where we left off" in second.stdout
    assert "What does it want to do?" in second.stdout
    assert not (tmp_path / "data").exists(), "nothing was written to SQLite"


def test_keys_rotate_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    old, new = (Fernet.generate_key().decode() for _ in range(2))
    db = {"PAUSECHECK_DATABASE_URL": pg_url}
    talk = "/pause\n" + ONBOARD + "done\n"
    assert (
        run_cli(["console"], talk, tmp_path, PAUSECHECK_ENCRYPTION_KEYS=old, **db).returncode == 0
    )
    rotated = run_cli(
        ["keys", "rotate"], "", tmp_path, PAUSECHECK_ENCRYPTION_KEYS=f"{new},{old}", **db
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted under the first key" in rotated.stdout
    assert "0 value(s) re-encrypted" not in rotated.stdout
    alone = run_cli(["console"], "/help\n", tmp_path, PAUSECHECK_ENCRYPTION_KEYS=new, **db)
    assert alone.returncode == 0, alone.stderr
    # The old key alone no longer opens anything: rotation really moved it all.
    stale = run_cli(["console"], "", tmp_path, PAUSECHECK_ENCRYPTION_KEYS=old, **db)
    assert stale.returncode == 1 and "PAUSECHECK_ENCRYPTION_KEYS" in stale.stderr


@pytest.mark.parametrize(
    "args",
    [["content", "check"], ["content", "transcript", "pause"], ["content", "graph", "pause"]],
    ids=" ".join,
)
def test_the_content_tools_never_open_the_database(args: list[str], tmp_path: Path) -> None:
    """`content eval` too, which only reads the examples (not run here: it trains the
    model on every fold, which takes minutes on a loaded machine)."""
    result = run_cli(args, "", tmp_path, PAUSECHECK_DATABASE_URL=UNREACHABLE)
    assert result.returncode == 0, result.stderr
