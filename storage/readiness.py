"""Is a database ready for the guide? Reachable, and its schema at the newest migration.

Read-only: a missing SQLite file is reported, never created, and nothing is migrated
(that is `pausecheck db upgrade`'s job), so a readiness probe changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage.migrate import alembic_config

# A probe that hangs is worse than one that says "no": a host that drops packets.
CONNECT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Readiness:
    """`problem` is None when ready; else one line saying what is wrong and the fix."""

    revision: str | None
    head: str
    problem: str | None = None

    @property
    def ready(self) -> bool:
        return self.problem is None


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return heads[0]


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


async def check_database(url: str, *, within: float = CONNECT_SECONDS) -> Readiness:
    head = head_revision()
    parsed = make_url(url)
    missing = _missing_file(parsed)
    if missing is not None:
        return Readiness(None, head, missing)
    engine = create_async_engine(parsed, hide_parameters=True)
    try:
        async with asyncio.timeout(within):
            revision = await current_revision(engine)
    except TimeoutError:
        return Readiness(None, head, f"database {shown(url)} did not answer within {within:g} s")
    except DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "refused"
        return Readiness(None, head, f"cannot reach database {shown(url)}: {first}")
    except OSError as exc:
        return Readiness(None, head, f"cannot reach database {shown(url)}: {exc}")
    finally:
        await engine.dispose()
    return Readiness(revision, head, _schema_problem(revision, head))


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema's migration (None for a database no migration has touched); also
    proves the database answers."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        return await connection.run_sync(_revision)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _missing_file(url: URL) -> str | None:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database or "")
    if path.is_file():
        return None
    return f"database {path} does not exist yet: run pausecheck db upgrade"


def _schema_problem(revision: str | None, head: str) -> str | None:
    if revision == head:
        return None
    if revision is None:
        return "the database has no tables yet: run pausecheck db upgrade"
    known = {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }
    if revision not in known:
        return (
            f"the database is at migration {revision}, which this version of pausecheck "
            "does not know (was it written by a newer one?)"
        )
    return (
        f"the database is at migration {revision}, the newest is {head}: run pausecheck db upgrade"
    )
