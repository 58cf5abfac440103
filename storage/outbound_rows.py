"""The outbox's rows (`outbound`), on SQL Core: storing a turn's messages with their
per-chat sequence, and reading them back as `dialogs.store.OutboundRow` values.

One row per message. A chat's next sequence numbers come from `outbound_chats` with
one upsert that locks the counter row until commit, so a chat's order is the order
in which the transactions that wrote to it committed, on PostgreSQL as on SQLite.
Chats are taken in sorted order, so two transactions writing to the same two chats
can never wait for each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.events import Address, Outbound
from dialogs.store import OutboundKind, OutboundRow, OutboundStatus
from storage.crypto import ENCRYPTED_KEY, VariableCipher
from storage.dialect_insert import insert_for
from storage.errors import StorageError
from storage.models import OutboundChatRow
from storage.models import OutboundRow as OutboundTableRow
from storage.outbound_json import outbound_from_json, outbound_to_json

OUTBOUND = cast(Table, OutboundTableRow.__table__)
CHATS = cast(Table, OutboundChatRow.__table__)
_INSERT = insert(OUTBOUND).returning(OUTBOUND.c.id, sort_by_parameter_order=True)
# The counter upsert, built once per dialect: a turn runs it on its hot path.
_NEXT_SEQ: dict[str, Any] = {}


def _next_seq(dialect: str) -> Any:
    statement = _NEXT_SEQ.get(dialect)
    if statement is None:
        statement = _NEXT_SEQ[dialect] = (
            insert_for(dialect, CHATS)
            .values(
                platform=bindparam("platform"),
                chat_id=bindparam("chat_id"),
                last_seq=bindparam("n"),
            )
            .on_conflict_do_update(
                index_elements=[CHATS.c.platform, CHATS.c.chat_id],
                set_={"last_seq": CHATS.c.last_seq + bindparam("n")},
            )
            .returning(CHATS.c.last_seq)
        )
    return statement


# The columns `row_from` reads, in its order.
COLUMNS = (
    OUTBOUND.c.id,
    OUTBOUND.c.platform,
    OUTBOUND.c.recipient,
    OUTBOUND.c.chat_id,
    OUTBOUND.c.private,
    OUTBOUND.c.seq,
    OUTBOUND.c.message,
    OUTBOUND.c.kind,
    OUTBOUND.c.created_at,
)
PENDING = OutboundStatus.PENDING.value


async def enqueue(
    session: AsyncSession,
    dialect: str,
    owner_id: int,
    address: Address,
    messages: Sequence[Outbound],
    at: datetime,
    kind: OutboundKind,
    *,
    worker: str,
    cipher: VariableCipher | None,
) -> list[OutboundRow]:
    """Insert one pending row per message (claimed by `worker`, which sends it after
    commit) and return them in the order given."""
    if not messages:
        return []
    if any(message.attachment is not None or message.chart is not None for message in messages):
        raise ValueError("a message with a file or chart cannot be stored; send it directly")
    destinations = [message.to or address for message in messages]
    counts: dict[tuple[str, str], int] = {}
    for destination in destinations:
        key = (destination.platform, destination.chat_id)
        counts[key] = counts.get(key, 0) + 1
    next_seq: dict[tuple[str, str], int] = {}
    for platform, chat_id in sorted(counts):
        n = counts[(platform, chat_id)]
        last = await session.scalar(
            _next_seq(dialect), {"platform": platform, "chat_id": chat_id, "n": n}
        )
        assert last is not None
        next_seq[(platform, chat_id)] = last - n + 1
    params: list[dict[str, Any]] = []
    seqs: list[int] = []
    for message, destination in zip(messages, destinations, strict=True):
        key = (destination.platform, destination.chat_id)
        seq = next_seq[key]
        next_seq[key] = seq + 1
        seqs.append(seq)
        params.append(
            {
                "user_id": owner_id,
                "platform": destination.platform,
                "chat_id": destination.chat_id,
                "recipient": destination.user_id,
                "private": destination.is_private,
                "seq": seq,
                "kind": kind.value,
                "status": PENDING,
                "reason": None,
                "message": encode_message(message, cipher),
                "created_at": at,
                "claimed_at": at,
                "claimed_by": worker,
                "sent_at": None,
                "updated_at": at,
            }
        )
    ids = (await session.scalars(_INSERT, params)).all()
    return [
        OutboundRow(id_, destination, seq, message, kind, at)
        for id_, destination, seq, message in zip(ids, destinations, seqs, messages, strict=True)
    ]


def encode_message(message: Outbound, cipher: VariableCipher | None) -> dict[str, Any]:
    data = outbound_to_json(message)
    return data if cipher is None else cipher.seal_json(data)


def decode_message(stored: Any, cipher: VariableCipher | None) -> Outbound:
    if isinstance(stored, dict) and set(stored) == {ENCRYPTED_KEY}:
        if cipher is None:
            raise StorageError("outbox messages are encrypted; set the key they were written with")
        token = stored[ENCRYPTED_KEY]
        if not isinstance(token, str):
            raise StorageError(f"a stored outbox message has a non-text {ENCRYPTED_KEY!r}")
        stored = cipher.open_json(token)
    return outbound_from_json(stored)


def row_from(row: Sequence[Any], cipher: VariableCipher | None) -> OutboundRow:
    """An `OutboundRow` from a result row of `select(*COLUMNS)`."""
    id_, platform, recipient, chat_id, private, seq, message, kind, created_at = row
    return OutboundRow(
        id=id_,
        address=Address(platform, recipient, chat_id, private),
        seq=seq,
        message=decode_message(message, cipher),
        kind=OutboundKind(kind),
        created_at=created_at,
    )


async def select_rows(
    session: AsyncSession, ids: Sequence[int], cipher: VariableCipher | None
) -> list[OutboundRow]:
    """The rows with `ids`, in order per chat."""
    if not ids:
        return []
    result = await session.execute(
        select(*COLUMNS)
        .where(OUTBOUND.c.id.in_(ids))
        .order_by(OUTBOUND.c.platform, OUTBOUND.c.chat_id, OUTBOUND.c.seq)
    )
    return [row_from(tuple(row), cipher) for row in result]
