"""What the PostgreSQL benchmarks share: a throwaway database, its URL per driver, and
due follow-ups planted in bulk (the guide's own parts are bench/guide_parts.py).

The server is `PAUSECHECK_BENCH_POSTGRES_URL` (default below: the machines' local
PostgreSQL 15). Each run gets a database of its own, `pc_bench_<random>`, dropped at
the end, so nothing is shared with the tests' schemas or another run; a whole database
rather than a schema, because asyncpg has no way to set `search_path` in the URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from bench.guide_parts import adult_profile
from dialogs.clock import SystemClock
from dialogs.store import FollowUpRequest, UserKey
from storage import open_store
from storage.models import FollowUpRow, UserRow

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
CHUNK = 5000


def server_url() -> str:
    return os.environ.get("PAUSECHECK_BENCH_POSTGRES_URL", DEFAULT_SERVER)


def admin_url() -> str:
    """The bench server's maintenance database, as a libpq URL (psycopg.connect)."""
    return _libpq(server_url())


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def temporary_database() -> Iterator[str]:
    """The name of a new, empty database on the bench server; dropped afterwards
    (`WITH (FORCE)`: a worker killed mid-run may still hold a connection)."""
    import psycopg

    name = f"pc_bench_{uuid.uuid4().hex[:12]}"
    admin = _libpq(server_url())
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(database: str, driver: str = "psycopg") -> str:
    """The async SQLAlchemy URL of `database` on the bench server, through `driver`."""
    url = make_url(server_url()).set(drivername=f"postgresql+{driver}", database=database)
    return url.render_as_string(hide_password=False)


async def plant_followups(
    url: str,
    platform: str,
    count: int,
    first_due: datetime,
    spread: timedelta,
    *,
    limit: timedelta = timedelta(days=1),
) -> None:
    """`count` consented adults (`<platform>:u0`, `u1`, ...), each with one follow-up,
    due evenly from `first_due` over `spread`.

    One person goes through the store's own API; the others are copies of those rows
    inserted with SQLAlchemy Core, so every column the store writes is filled the same
    way whatever the schema holds today. The id sequences are moved past the copies,
    so rows the guide writes later get fresh ids."""
    store = await open_store(url)
    now = SystemClock().now()
    async with store.session() as s:
        user = UserKey(platform, "u0")
        await s.save_profile(user, adult_profile(now))
        await s.schedule_followup(
            user,
            FollowUpRequest("followup", "u0", first_due, first_due + limit, f"bench:{platform}:u0"),
        )
    tables = UserRow.metadata.tables
    users, followups = tables[UserRow.__tablename__], tables[FollowUpRow.__tablename__]
    step = spread / max(count, 1)
    async with store.engine.begin() as conn:
        user_row = dict(
            (await conn.execute(select(users).where(users.c.platform == platform))).mappings().one()
        )
        followup_row = dict(
            (await conn.execute(select(followups).where(followups.c.user_id == user_row["id"])))
            .mappings()
            .one()
        )
        top_user = await conn.scalar(select(users.c.id).order_by(users.c.id.desc()).limit(1))
        top_followup = await conn.scalar(
            select(followups.c.id).order_by(followups.c.id.desc()).limit(1)
        )
        # The seed rows read above exist, so both tables have a highest id.
        assert top_user is not None and top_followup is not None
        for start in range(1, count, CHUNK):
            stop = min(count, start + CHUNK)
            await conn.execute(
                insert(users),
                [
                    user_row | {"id": top_user + i, "platform_user_id": f"u{i}"}
                    for i in range(start, stop)
                ],
            )
            await conn.execute(
                insert(followups),
                [
                    followup_row
                    | {
                        "id": top_followup + i,
                        "user_id": top_user + i,
                        "chat_id": f"u{i}",
                        "dedupe_key": f"bench:{platform}:u{i}",
                        "due_at": first_due + step * i,
                        "expires_at": first_due + step * i + limit,
                    }
                    for i in range(start, stop)
                ],
            )
        if conn.dialect.name == "postgresql":
            for table in ("users", "followups"):
                await conn.execute(
                    text(
                        f"select setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" (select max(id) from {table}))"
                    )
                )
    if store.engine.dialect.name == "postgresql":
        # What autovacuum does once a tenth of a table changed, before the wave rather
        # than some time into it: planned on an empty table's statistics, a claim joins
        # every pending follow-up with its user and sorts them all (EXPLAIN: 9 ms a
        # claim with 10,000 pending, against 0.1 ms by the index on status and due
        # time), which the wave would measure instead.
        async with store.engine.begin() as conn:
            await conn.execute(text("ANALYZE users, followups"))
    await store.close()
