"""Reading what happened: the database (read-only, as another process would) and
the fake's record of every call."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.telegram.fake_bot_api import Call, FakeBotAPI

# Calls that put a message in a chat.
POSTS = frozenset({"sendMessage", "sendDocument", "sendPhoto"})


@contextlib.contextmanager
def read_only(db: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        yield connection
    finally:
        connection.close()


def when(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def rows(db: Path, query: str, *args: Any) -> list[sqlite3.Row]:
    with read_only(db) as connection:
        return list(connection.execute(query, args))


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


def pending_texts(db: Path) -> dict[int, list[tuple[datetime, str]]]:
    """(created at, text) of the outbox rows still pending, per chat, in order (their
    message is kept until the row is sent)."""
    import json

    out: dict[int, list[tuple[datetime, str]]] = {}
    for row in rows(
        db,
        "select chat_id, created_at, message from outbound where status = 'pending' order by seq",
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
