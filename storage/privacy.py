"""What the store holds about one person: exporting it, and forgetting it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    CursorResult,
    Delete,
    Table,
    delete,
    inspect,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.store import UserKey
from storage.crypto import UnreadableData, VariableCipher, decode_variables
from storage.membership import open_member, session_member_tag
from storage.models import (
    Base,
    ConversationRow,
    FollowUpRow,
    JournalEntryRow,
    PartnerLinkRow,
    PartnerSignalRow,
    ProcessedEventRow,
    ReflectionAnswerRow,
    ReflectionParticipantRow,
    UserRow,
)
from storage.outbound_json import open_messages, outbound_to_json
from storage.outbound_rows import CHATS, OUTBOUND, PENDING, decode_message
from storage.sealed_profile import exported_profile

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
            "outbound": [],
            "partner_links": [],
            "partner_signals": [],
        }
    user = await session.get(UserRow, user_id, populate_existing=True)
    conversation = await session.get(ConversationRow, user_id, populate_existing=True)
    conversation_data = None
    if conversation is not None:
        conversation_data = _row_data(conversation)
        conversation_data["variables"] = _readable(decode_variables, conversation.variables, cipher)
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
    joined: list[ReflectionParticipantRow] = []
    answers: list[ReflectionAnswerRow] = []
    if user is not None:
        # Reflection rows name their person by member tag, not user id.
        owner = UserKey(user.platform, user.platform_user_id)
        member = await session_member_tag(session, owner, cipher)
        joined = list(
            await session.scalars(
                select(ReflectionParticipantRow)
                .where(ReflectionParticipantRow.member == member)
                .order_by(ReflectionParticipantRow.joined_at)
            )
        )
        answers = list(
            await session.scalars(
                select(ReflectionAnswerRow)
                .where(ReflectionAnswerRow.member == member)
                .order_by(ReflectionAnswerRow.id)
            )
        )
    return {
        "reflections_joined": [_participant_data(row, cipher) for row in joined],
        "reflection_answers": [_answer_data(row, cipher) for row in answers],
        "user": None if user is None else _user_data(user, cipher),
        "conversation": conversation_data,
        "journal": [_row_data(row) for row in journal],
        "followups": [_followup_data(row, cipher) for row in followups],
        "processed_events": [_row_data(row) for row in events],
        "outbound": await _outbound_data(session, user_id, user, cipher),
        **await _partner_data(session, user_id),
    }


async def _partner_data(session: AsyncSession, user_id: int) -> dict[str, Any]:
    """The person's partner links (their side: whether they invited, the other's
    platform, never the other's id) and the signals they sent or received."""
    links = list(
        await session.scalars(
            select(PartnerLinkRow)
            .where(or_(PartnerLinkRow.inviter_id == user_id, PartnerLinkRow.partner_id == user_id))
            .order_by(PartnerLinkRow.id)
        )
    )
    exported_links = []
    for link in links:
        other_id = link.partner_id if link.inviter_id == user_id else link.inviter_id
        other = await session.get(UserRow, other_id) if other_id is not None else None
        exported_links.append(
            {
                "link": link.id,
                "you_invited": link.inviter_id == user_id,
                "partner_platform": None if other is None else other.platform,
                "status": link.status,
                "created_at": _json_ready(link.created_at),
                "accepted_at": _json_ready(link.accepted_at),
                "ended_at": _json_ready(link.ended_at),
            }
        )
    signals = await session.scalars(
        select(PartnerSignalRow)
        .where(PartnerSignalRow.link_id.in_([link.id for link in links]))
        .order_by(PartnerSignalRow.id)
    )
    exported_signals = [
        {
            "link": signal.link_id,
            "direction": "sent" if signal.sender_id == user_id else "received",
            "kind": signal.kind,
            "words": signal.words,
            "status": signal.status,
            "created_at": _json_ready(signal.created_at),
            "due_at": _json_ready(signal.due_at),
            "sent_at": _json_ready(signal.sent_at),
        }
        for signal in signals
        # What the partner was offered but never sent is theirs alone.
        if signal.sender_id == user_id or signal.status == "sent"
    ]
    return {"partner_links": exported_links, "partner_signals": exported_signals}


def _addressed_to(user: UserKey) -> ColumnElement[bool]:
    """Outbox rows for the person's own private chat, whoever's turn wrote them (a
    group reflection's prompt is written in the facilitator's turn)."""
    return (
        (OUTBOUND.c.platform == user.platform)
        & (OUTBOUND.c.recipient == user.user_id)
        & OUTBOUND.c.private
    )


async def _outbound_data(
    session: AsyncSession, user_id: int, user: UserRow | None, cipher: VariableCipher | None
) -> list[dict[str, Any]]:
    """What the outbox holds for or from the person: each message's fate and times;
    the text only while it is still owed (a sent row keeps none)."""
    mine = OUTBOUND.c.user_id == user_id
    if user is not None:
        mine = or_(mine, _addressed_to(UserKey(user.platform, user.platform_user_id)))
    rows = await session.execute(select(OUTBOUND).where(mine).order_by(OUTBOUND.c.id))
    exported = []
    for row in rows.mappings():
        data = {key: _json_ready(value) for key, value in row.items() if key not in _INTERNAL}
        data.pop("claimed_by", None)
        pending = row["status"] == PENDING and row["message"] is not None
        data["message"] = (
            outbound_to_json(decode_message(row["message"], cipher)) if pending else None
        )
        exported.append(data)
    return exported


async def delete_addressed_rows(session: AsyncSession, user: UserKey, chat_ids: set[str]) -> int:
    """Outbox rows for the person's private chat that another person's turn wrote,
    and the sequence counters of their chats (`chat_ids`, besides those rows' own):
    `delete_user_rows` removes only what references their user id."""
    addressed = _addressed_to(user)
    chats = set(chat_ids) | set(
        (await session.scalars(select(OUTBOUND.c.chat_id).where(addressed).distinct())).all()
    )
    deleted = await count_deleted(session, delete(OUTBOUND).where(addressed))
    if chats:
        await session.execute(
            delete(CHATS).where(CHATS.c.platform == user.platform, CHATS.c.chat_id.in_(chats))
        )
    return deleted


async def delete_user_rows(session: AsyncSession, user_id: int) -> int:
    """Delete the user and every row that references them; returns rows deleted.

    Each referencing table is emptied explicitly, for an exact count and so nothing
    is left behind on a connection where foreign keys are not enforced. ON DELETE
    CASCADE still covers rows that refer to the user only indirectly, and any
    inserted concurrently before the user row goes.
    """
    from storage.reflection_rows import delete_facilitated_answers, delete_member_rows

    deleted = 0
    user = await session.get(UserRow, user_id)
    if user is not None:
        # The member secret is in the session from the start: nothing is decrypted.
        owner = UserKey(user.platform, user.platform_user_id)
        deleted += await delete_member_rows(session, owner, None)
    deleted += await delete_facilitated_answers(session, user_id)
    # Every signal of the person's links, the partner's too (ON DELETE CASCADE would,
    # but not on a connection where foreign keys are off).
    links = select(PartnerLinkRow.id).where(
        or_(PartnerLinkRow.inviter_id == user_id, PartnerLinkRow.partner_id == user_id)
    )
    deleted += await count_deleted(
        session, delete(PartnerSignalRow).where(PartnerSignalRow.link_id.in_(links))
    )
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


UNREADABLE = "unreadable (encrypted with a key no longer set)"


def _readable(read: Callable[[Any, VariableCipher | None], Any], stored: Any, cipher: Any) -> Any:
    """`read(stored, cipher)`, or a note where no key opens it: an export is given
    even when part of it was sealed under a key since lost."""
    try:
        return read(stored, cipher)
    except UnreadableData:
        return UNREADABLE


def _user_data(row: UserRow, cipher: VariableCipher | None) -> dict[str, Any]:
    data = _row_data(row)
    exported_profile(data, row.sealed, cipher)
    return data


def _participant_data(
    row: ReflectionParticipantRow, cipher: VariableCipher | None
) -> dict[str, Any]:
    data = _row_data(row)
    data.pop("member", None)
    opened = open_member(data.pop("sealed"), cipher)
    data["chat_id"] = UNREADABLE if opened is None else opened[1]
    return data


def _answer_data(row: ReflectionAnswerRow, cipher: VariableCipher | None) -> dict[str, Any]:
    data = _row_data(row)
    data.pop("member", None)
    stored = row.text
    if stored is not None:
        opened = _readable(decode_variables, stored, cipher)
        data["text"] = opened.get("text") if isinstance(opened, dict) else opened
    return data


def _followup_data(row: FollowUpRow, cipher: VariableCipher | None) -> dict[str, Any]:
    data = _row_data(row)
    # The messages of a delivery in progress, readable even when sealed at rest.
    data["messages"] = _readable(open_messages, row.messages, cipher)
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
