"""What the store holds about one person: exporting it, and forgetting it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Column, CursorResult, Delete, Table, delete, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import VariableCipher, decode_variables
from storage.models import (
    Base,
    ConversationRow,
    FollowUpRow,
    JournalEntryRow,
    ProcessedEventRow,
    ReflectionAnswerRow,
    ReflectionParticipantRow,
    UserRow,
)
from storage.outbound_json import open_messages

# Internal surrogate keys mean nothing to the person and would only invite joins
# against other exports.
_INTERNAL = frozenset({"id", "user_id"})


async def export_user_rows(
    session: AsyncSession, user_id: int | None, cipher: VariableCipher | None
) -> dict[str, Any]:
    """Every row about the user as JSON-ready data, one key per table; `user_id`
    None (never seen) gives the same keys, empty."""
    if user_id is None:
        return {
            "user": None,
            "conversation": None,
            "journal": [],
            "followups": [],
            "processed_events": [],
            "reflections_joined": [],
            "reflection_answers": [],
        }
    user = await session.get(UserRow, user_id, populate_existing=True)
    conversation = await session.get(ConversationRow, user_id, populate_existing=True)
    conversation_data = None
    if conversation is not None:
        conversation_data = _row_data(conversation)
        conversation_data["variables"] = decode_variables(conversation.variables, cipher)
    journal = await session.scalars(
        select(JournalEntryRow)
        .where(JournalEntryRow.user_id == user_id)
        .order_by(JournalEntryRow.id)
    )
    followups = await session.scalars(
        select(FollowUpRow).where(FollowUpRow.user_id == user_id).order_by(FollowUpRow.id)
    )
    events = await session.scalars(
        select(ProcessedEventRow)
        .where(ProcessedEventRow.user_id == user_id)
        .order_by(ProcessedEventRow.processed_at, ProcessedEventRow.event_key)
    )
    joined = await session.scalars(
        select(ReflectionParticipantRow)
        .where(ReflectionParticipantRow.user_id == user_id)
        .order_by(ReflectionParticipantRow.joined_at)
    )
    answers = await session.scalars(
        select(ReflectionAnswerRow)
        .where(ReflectionAnswerRow.user_id == user_id)
        .order_by(ReflectionAnswerRow.id)
    )
    return {
        "reflections_joined": [_row_data(row) for row in joined],
        "reflection_answers": [_answer_data(row, cipher) for row in answers],
        "user": None if user is None else _row_data(user),
        "conversation": conversation_data,
        "journal": [_row_data(row) for row in journal],
        "followups": [_followup_data(row, cipher) for row in followups],
        "processed_events": [_row_data(row) for row in events],
    }


async def delete_user_rows(session: AsyncSession, user_id: int) -> int:
    """Delete the user and every row that references them; returns rows deleted.

    Each referencing table is emptied explicitly, for an exact count and so nothing
    is left behind on a connection where foreign keys are not enforced. ON DELETE
    CASCADE still covers rows that refer to the user only indirectly, and any
    inserted concurrently before the user row goes.
    """
    deleted = 0
    for table, column in _columns_referencing_users():
        deleted += await count_deleted(session, delete(table).where(column == user_id))
    deleted += await count_deleted(session, delete(UserRow).where(UserRow.id == user_id))
    # Rows of this user loaded earlier in the session are gone from the database.
    session.expunge_all()
    return deleted


async def count_deleted(session: AsyncSession, statement: Delete) -> int:
    """Run a DELETE; the number of rows it removed."""
    # A DELETE always yields a CursorResult; the stubs only promise a Result.
    result = cast(CursorResult[Any], await session.execute(statement))
    return result.rowcount


def _columns_referencing_users() -> Iterator[tuple[Table, Column[Any]]]:
    users = UserRow.__table__
    # Dependants first, in case a later table references another user-owned one.
    for table in reversed(Base.metadata.sorted_tables):
        for foreign_key in table.foreign_keys:
            if foreign_key.column.table is users:
                yield table, foreign_key.parent


def _answer_data(row: ReflectionAnswerRow, cipher: VariableCipher | None) -> dict[str, Any]:
    data = _row_data(row)
    stored = row.text
    data["text"] = None if stored is None else decode_variables(stored, cipher).get("text")
    return data


def _followup_data(row: FollowUpRow, cipher: VariableCipher | None) -> dict[str, Any]:
    data = _row_data(row)
    # The messages of a delivery in progress, readable even when sealed at rest.
    data["messages"] = open_messages(row.messages, cipher)
    return data


def _row_data(row: Base) -> dict[str, Any]:
    return {
        attribute.key: _json_ready(getattr(row, attribute.key))
        for attribute in inspect(row).mapper.column_attrs
        if attribute.key not in _INTERNAL
    }


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
