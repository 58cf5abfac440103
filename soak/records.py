"""Reading what happened: the database (read-only where the backend allows it, as
another process would) and the fake's record of every call.

`Database` reads either backend through SQLAlchemy, so every check is written once:
an SQLite file (`sqlite+aiosqlite:///…`, opened read-only) or a PostgreSQL schema
(`postgresql+psycopg://…`, the URL the workers use). Queries name their parameters
(`:now`); a datetime is bound as the backend stores it, and `when` reads a stored
timestamp back from either (SQLite hands back text, PostgreSQL a datetime)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, RowMapping, create_engine, text
from sqlalchemy.engine import make_url

from tests.telegram.fake_bot_api import Call, FakeBotAPI

# Calls that put a message in a chat.
POSTS = frozenset({"sendMessage", "sendDocument", "sendPhoto"})
# The synchronous driver for each async one the guide is given.
SYNC_DRIVERS = {
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


class Database:
    """The run's database, for reading only, by the guide's own URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        driver = SYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
        if self.sqlite:
            # Read-only, as another process would: the soak never writes here.
            self.file = parsed.database or ""
            sync = f"sqlite:///file:{self.file}?mode=ro&uri=true"
            self._engine: Engine = create_engine(sync, connect_args={"timeout": 30})
        else:
            self.file = ""
            sync_url = parsed.set(drivername=driver)
            self._engine = create_engine(sync_url, pool_pre_ping=True)

    def rows(self, query: str, **params: Any) -> list[RowMapping]:
        bound = {k: self._bind(v) for k, v in params.items()}
        with self._engine.connect() as connection:
            return list(connection.execute(text(query), bound).mappings())

    def count(self, query: str, **params: Any) -> int:
        [row] = self.rows(query, **params)
        return int(next(iter(row.values())))

    def texts_of_every_row(self, tables: Sequence[str]) -> list[str]:
        """Each row of each table as one text (PostgreSQL: the row cast to text), for
        finding words that should be gone; SQLite's files are read whole instead."""
        out: list[str] = []
        with self._engine.connect() as connection:
            for table in tables:
                query = f'select cast(t as text) from "{table}" t'
                out.extend(str(r[0]) for r in connection.execute(text(query)))
        return out

    def close(self) -> None:
        self._engine.dispose()

    def _bind(self, value: Any) -> Any:
        if isinstance(value, datetime) and self.sqlite:
            # As SQLAlchemy writes a UTC DateTime into SQLite: naive, microseconds.
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")[:26]
        return value


def when(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Post:
    """A message the fake took into a chat: the call's own text and buttons (what was
    sent, before any later edit)."""

    chat_id: int
    text: str
    data: tuple[str, ...]
    method: str
    index: int  # the call's position in the fake's record
    at: float  # when the fake took it (time.monotonic())

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return (self.text, self.data)


def posts(fake: FakeBotAPI) -> dict[int, list[Post]]:
    """Every message the fake accepted, per chat, in the order it accepted them."""
    out: dict[int, list[Post]] = {}
    for index, call in enumerate(fake.calls):
        if call.method in POSTS and call.ok and call.chat_id is not None:
            out.setdefault(call.chat_id, []).append(_post(call, index))
    return out


def _post(call: Call, index: int) -> Post:
    markup = call.params.get("reply_markup") or {}
    data = tuple(
        b.get("callback_data", "")
        for row in markup.get("inline_keyboard", [])
        for b in row
        if "callback_data" in b
    )
    text = str(call.params.get("text") or call.params.get("caption") or "")
    return Post(call.chat_id or 0, text, data, call.method, index, call.at)


def pending_texts(
    db: Database, claimed_by: str | None = None
) -> dict[int, list[tuple[datetime, str]]]:
    """(created at, text) of the outbox rows still pending, per chat, in order (their
    message is kept until the row is sent); with `claimed_by`, only that worker's."""
    import json

    out: dict[int, list[tuple[datetime, str]]] = {}
    mine = "" if claimed_by is None else " and claimed_by = :worker"
    for row in db.rows(
        "select chat_id, created_at, message from outbound where status = 'pending'"
        f"{mine} order by seq",
        worker=claimed_by,
    ):
        message = row["message"]
        if message is None:
            continue
        data = json.loads(message) if isinstance(message, str) else message
        text = data.get("text") if isinstance(data, dict) else None
        created = when(row["created_at"])
        if isinstance(text, str) and created is not None:
            with contextlib.suppress(ValueError):
                out.setdefault(int(row["chat_id"]), []).append((created, text))
    return out
