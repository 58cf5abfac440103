"""The outbox's rows (`outbound`), on SQL Core: storing a turn's messages with their
per-chat sequence, and reading them back as `dialogs.store.OutboundRow` values.

One row per message. A chat's next sequence numbers come from `outbound_chats` with
one upsert that locks the counter row until commit, so a chat's order is the order
in which the transactions that wrote to it committed, on PostgreSQL as on SQLite.
Chats are taken in sorted order, so two transactions writing to the same two chats
can never wait for each other in a cycle.

Once a chat's counter is taken, every earlier row of that chat has committed: a row
is marked `first` (`dialogs.store.OutboundRow`) when none of them to its address is
still pending, other than rows of the same transaction. Rows never go back to
pending, so that stays true, and `dialogs.delivery.Delivery` sends such a row
without asking the store what comes before it. On SQLite, rows to one address
(nearly every turn and follow-up) ask that in the counter's own upsert: one round
trip, not two (see `_NEXT_SEQ_OWED` for why not on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    exists,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.delivery import BEHIND_AN_EARLIER_ROW
from dialogs.events import Address, Outbound
from dialogs.store import ChatTurn, OutboundKind, OutboundRow, OutboundStatus
from storage.crypto import ENCRYPTED_KEY, VariableCipher
from storage.dialect_insert import insert_for
from storage.errors import StorageError
from storage.models import ConversationRow, LeaseRow, OutboundChatRow
from storage.models import OutboundRow as OutboundTableRow
from storage.outbound_json import outbound_from_json, outbound_to_json

OUTBOUND = cast(Table, OutboundTableRow.__table__)
CHATS = cast(Table, OutboundChatRow.__table__)
_INSERT = insert(OUTBOUND).returning(OUTBOUND.c.id, sort_by_parameter_order=True)
# The counter upsert, built once per dialect: a turn runs it on its hot path.
_NEXT_SEQ: dict[str, Any] = {}
PENDING = OutboundStatus.PENDING.value


def _next_seq(dialect: str) -> Any:
    statement = _NEXT_SEQ.get(dialect)
    if statement is None:
        statement = _NEXT_SEQ[dialect] = _counter_upsert(dialect).returning(CHATS.c.last_seq)
    return statement


def _counter_upsert(dialect: str) -> Any:
    return (
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
    )


# Whether a row to the address in the parameters is still pending, this
# transaction's own `earlier` rows aside (see `_owed_before`).
_OWED = exists().where(
    OUTBOUND.c.platform == bindparam("platform"),
    OUTBOUND.c.chat_id == bindparam("chat_id"),
    OUTBOUND.c.recipient == bindparam("recipient"),
    OUTBOUND.c.private == bindparam("private"),
    OUTBOUND.c.status == PENDING,
    OUTBOUND.c.id.not_in(bindparam("earlier", expanding=True)),
)
# SQLite only: the counter upsert that also says whether a row to the address is
# still pending. Its transactions run one at a time, so what the statement sees
# is all there is. Not on PostgreSQL: an upsert that waited for another
# transaction's lock on the counter updates the row as committed, but its
# RETURNING subquery reads the snapshot from before that commit, and would miss
# the rows the other transaction wrote (`_owed_before` runs after the lock instead).
_NEXT_SEQ_OWED = _counter_upsert("sqlite").returning(CHATS.c.last_seq, _OWED)


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
# Why a row sent again after a failure or a crash was not: the person's conversation
# is past the turn it was rendered at.
MOVED_ON = "conversation moved on"


async def enqueue(
    session: AsyncSession,
    dialect: str,
    owner_id: int | None,
    address: Address,
    messages: Sequence[Outbound],
    at: datetime,
    kind: OutboundKind,
    *,
    worker: str,
    cipher: VariableCipher | None,
    earlier: Collection[int] = (),
    claimed_at: datetime | None = None,
    turn: int | None = None,
    followup_id: int | None = None,
) -> list[OutboundRow]:
    """Insert one pending row per message (claimed by `worker`, which sends it after
    commit) and return them in the order given. `earlier`: rows this transaction
    wrote before, which do not keep a row from being `first`. `claimed_at` starts the
    sender's lease (default `at`): the time of writing, not of the event, whose time
    may be the platform's stamp of a message handled much later. `turn`: the owner's
    conversation turn these were rendered at, kept on the rows to `address` when it
    is a private chat (see `supersede_moved_on`); `followup_id`: the follow-up that
    said them."""
    if not messages:
        return []
    if any(message.attachment is not None for message in messages):
        raise ValueError("a message with a file cannot be stored; send it directly")
    destinations = [message.to or address for message in messages]
    only = destinations[0]
    if dialect == "sqlite" and all(destination == only for destination in destinations):
        # The common case, one address: its counter and what is owed there before it
        # in one statement (a follow-up's or a turn's reply).
        n = len(messages)
        last, owed = (
            await session.execute(
                _NEXT_SEQ_OWED,
                {
                    "platform": only.platform,
                    "chat_id": only.chat_id,
                    "n": n,
                    "recipient": only.user_id,
                    "private": only.is_private,
                    "earlier": list(earlier),
                },
            )
        ).one()
        seqs = list(range(last - n + 1, last + 1))
        first = {only: not owed}
    else:
        seqs, first = await _take_seqs(session, dialect, destinations, earlier)
    params = [
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
            "claimed_at": claimed_at or at,
            "claimed_by": worker,
            "sent_at": None,
            "updated_at": at,
            "turn": turn if destination == address and address.is_private else None,
            "followup_id": followup_id,
        }
        for message, destination, seq in zip(messages, destinations, seqs, strict=True)
    ]
    ids = (await session.scalars(_INSERT, params)).all()
    return [
        OutboundRow(id_, destination, seq, message, kind, at, first[destination])
        for id_, destination, seq, message in zip(ids, destinations, seqs, messages, strict=True)
    ]


async def _take_seqs(
    session: AsyncSession,
    dialect: str,
    destinations: Sequence[Address],
    earlier: Collection[int],
) -> tuple[list[int], dict[Address, bool]]:
    """Each destination's seq, its chat's counter taken once for all its rows (chats
    in sorted order); and for each address whether its first row here is `first`."""
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
    seqs: list[int] = []
    for destination in destinations:
        key = (destination.platform, destination.chat_id)
        seqs.append(next_seq[key])
        next_seq[key] += 1
    lowest: dict[Address, int] = {}
    for destination, seq in zip(destinations, seqs, strict=True):
        lowest.setdefault(destination, seq)
    first = {
        destination: not await _owed_before(session, destination, seq, earlier)
        for destination, seq in lowest.items()
    }
    return seqs, first


def for_address(address: Address) -> Any:
    """The rows addressed to `address` (a chat, and in it one person when private)."""
    return (
        (OUTBOUND.c.platform == address.platform)
        & (OUTBOUND.c.chat_id == address.chat_id)
        & (OUTBOUND.c.recipient == address.user_id)
        & (OUTBOUND.c.private == address.is_private)
    )


async def _owed_before(
    session: AsyncSession, address: Address, seq: int, earlier: Collection[int]
) -> bool:
    """Whether a row to `address` before `seq` is still pending (this transaction's
    own `earlier` rows aside)."""
    query = select(OUTBOUND.c.id).where(
        for_address(address), OUTBOUND.c.status == PENDING, OUTBOUND.c.seq < seq
    )
    if earlier:
        query = query.where(OUTBOUND.c.id.not_in(list(earlier)))
    return await session.scalar(query.limit(1)) is not None


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


# A worker's liveness lease is this and its worker id (storage/liveness.py, which
# imports this module, so the name is defined here).
LIVENESS_PREFIX = "worker:"


def claimer_alive(now: datetime) -> ColumnElement[bool]:
    """Whether a row's claimer holds an unexpired liveness lease (storage/liveness.py).
    Such a worker's rows are never taken for their time lease: a live worker's send
    may rightly wait longer than the 30 s (a wave's messages behind the cap), and
    taken meanwhile, a row went out twice, once from each worker (a three-worker
    soak, seed 2). Its heartbeat's lapse frees them instead, in seconds."""
    return exists(
        select(LeaseRow.name).where(
            LeaseRow.name == literal(LIVENESS_PREFIX) + OUTBOUND.c.claimed_by,
            LeaseRow.holder == OUTBOUND.c.claimed_by,
            LeaseRow.expires_at > now,
        )
    )


async def take_chat(
    session: AsyncSession,
    address: Address,
    up_to: int,
    now: datetime,
    lease: timedelta,
    *,
    worker: str,
    nobody: str,
    have: Mapping[int, OutboundRow],
    elsewhere: Collection[int],
    known: Collection[int],
    cipher: VariableCipher | None,
) -> ChatTurn:
    """`Store.take_chat`: one read of the address's pending rows up to `up_to`, and
    a conditional claim of those that may go, so that two processes never both take
    one (the first moves `claimed_at` out of the second's condition)."""
    found = (
        await session.execute(
            select(
                OUTBOUND.c.id,
                OUTBOUND.c.claimed_by,
                OUTBOUND.c.claimed_at,
                claimer_alive(now).label("alive"),
            )
            .where(for_address(address), OUTBOUND.c.status == PENDING, OUTBOUND.c.seq <= up_to)
            .order_by(OUTBOUND.c.seq)
        )
    ).all()
    stale = now - lease
    takeable: list[int] = []
    behind_own = False
    for id_, claimed_by, claimed_at, alive in found:
        if id_ in elsewhere:
            break
        if claimed_by == worker and claimed_at >= stale and id_ not in have and id_ not in known:
            # Ours, and its sender has not handed it over yet: it may be about to be
            # sent, or marked instead (a toast, a Discord interaction's own reply).
            behind_own = True
            break
        if not (claimed_by in (worker, nobody) or (claimed_at < stale and not alive)):
            break
        takeable.append(id_)
    if any(id_ not in have for id_ in takeable) or any(
        claimed_by != worker for _, claimed_by, _, _ in found[: len(takeable)]
    ):
        # Someone else's, or read back: claim them now, so no other process's sweep
        # takes them while they go.
        claimed = set(
            (
                await session.scalars(
                    update(OUTBOUND)
                    .where(
                        OUTBOUND.c.id.in_(takeable),
                        OUTBOUND.c.status == PENDING,
                        OUTBOUND.c.claimed_by.in_((worker, nobody))
                        | ((OUTBOUND.c.claimed_at < stale) & ~claimer_alive(now)),
                    )
                    .values(claimed_at=now, claimed_by=worker, updated_at=now)
                    .returning(OUTBOUND.c.id)
                )
            ).all()
        )
        taken = 0
        while taken < len(takeable) and takeable[taken] in claimed:
            taken += 1
        takeable = takeable[:taken]
    waiting_rows = found[len(takeable) :]
    # Rows sent again, not by the send they were written for (a dead process's, or
    # past their lease): not if the person's conversation has moved on since.
    resent = [
        id_
        for id_, claimed_by, claimed_at, _ in found[: len(takeable)]
        if id_ not in have and (claimed_by != worker or claimed_at < stale)
    ]
    superseded = await supersede_moved_on(session, resent, now)
    takeable = [id_ for id_ in takeable if id_ not in superseded]
    read = {
        row.id: row
        for row in await select_rows(session, [i for i in takeable if i not in have], cipher)
    }
    return ChatTurn(
        rows=tuple(have[id_] if id_ in have else read[id_] for id_ in takeable),
        waiting=tuple(
            id_ for id_, claimed_by, _, _ in waiting_rows if claimed_by in (worker, nobody)
        ),
        waiting_behind=waiting_rows[0][0] if waiting_rows else None,
        behind_own=behind_own and bool(waiting_rows),
        superseded=tuple(sorted(superseded)),
    )


async def supersede_moved_on(session: AsyncSession, ids: Collection[int], at: datetime) -> set[int]:
    """Record as superseded ("conversation moved on") those of the pending rows `ids`
    rendered at a turn of their owner's conversation that is over: the person has
    answered since (or a later message asked something else), so its buttons are
    stale and its question may repeat one they answered. Returns their ids."""
    if not ids:
        return set()
    current = (
        select(ConversationRow.turn)
        .where(ConversationRow.user_id == OUTBOUND.c.user_id)
        .scalar_subquery()
    )
    superseded = await session.scalars(
        update(OUTBOUND)
        .where(
            OUTBOUND.c.id.in_(list(ids)),
            OUTBOUND.c.status == PENDING,
            OUTBOUND.c.turn.is_not(None),
            OUTBOUND.c.turn < current,
            # A row that only waited for an earlier one was never tried: it goes.
            OUTBOUND.c.reason.is_(None) | (OUTBOUND.c.reason != BEHIND_AN_EARLIER_ROW),
        )
        .values(
            status=OutboundStatus.SUPERSEDED.value,
            reason=MOVED_ON,
            message=null(),
            updated_at=at,
        )
        .returning(OUTBOUND.c.id)
    )
    return set(superseded.all())
