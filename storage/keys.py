"""The encryption keys against the stored data: the start-up check and rotation.

**Start-up check** (`check_keys`, run by `open_store`): a sample of every sealed
column is tried with the configured keys. If sealed data is there and no key opens
any of it, the guide stops with one line saying so, instead of starting and
answering everyone with "something went wrong". If some opens and some does not
(a key dropped before rotation finished), it starts, logs how many samples failed,
and those rows are reset as they are met (storage.crypto, storage.sealed_profile).

**Rotation** (`rotate_keys`, `pausecheck keys rotate`): every sealed value is opened
with any key and sealed again under the first one, and every plain value of a
sealable column is sealed, in batches of one transaction each. Values no key opens
are counted, and with `discard_unreadable` reset (a conversation starts afresh, the
safety fields take their fail-safe defaults, an unreadable participant row is
removed, an answer's text or a delivery's messages are emptied). After a rotation
that left nothing unreadable, the older keys can be removed from the setting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.crypto import (
    KEY_VARIABLE,
    UnreadableData,
    VariableCipher,
    is_sealed,
    open_value,
    seal_value,
)
from storage.errors import StorageError
from storage.models import (
    Base,
    ConversationRow,
    DeploymentSecretRow,
    FollowUpRow,
    ReflectionAnswerRow,
    ReflectionParticipantRow,
    UserRow,
)
from storage.sealed_profile import UNREADABLE_DEFAULTS

log = logging.getLogger(__name__)

_SAMPLE = 50
_BATCH = 500


@dataclass(frozen=True, slots=True)
class _Sealable:
    table: Table
    column: str
    # What a value becomes when no key opens it and it is discarded; None deletes
    # the row instead.
    discarded: Callable[[], Any] | None
    # Plain values of this column get sealed on rotation (False: the plain form is
    # a different shape, handled elsewhere, such as a secret the start makes).
    seal_plain: bool = True


def _sealables() -> list[_Sealable]:
    found = [
        _Sealable(_t(DeploymentSecretRow), "value", None, seal_plain=False),
        _Sealable(_t(ConversationRow), "variables", dict),
        _Sealable(_t(UserRow), "sealed", lambda: dict(_unreadable_profile())),
        _Sealable(_t(ReflectionParticipantRow), "sealed", None),
        _Sealable(_t(ReflectionAnswerRow), "text", lambda: None),
        _Sealable(_t(FollowUpRow), "messages", lambda: None),
    ]
    outbound = Base.metadata.tables.get("outbound")
    if outbound is not None and "message" in outbound.c:
        # The transactional outbox (issue 14): a message owed to someone.
        found.append(_Sealable(outbound, "message", lambda: None, seal_plain=False))
    return found


def _t(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _unreadable_profile() -> dict[str, Any]:
    return {"crisis_at": None, "unsafe": UNREADABLE_DEFAULTS["unsafe"]}


@dataclass(slots=True)
class KeyCheck:
    sealed: int = 0
    opened: int = 0

    @property
    def none_fits(self) -> bool:
        return self.sealed > 0 and self.opened == 0


async def check_keys(engine: AsyncEngine, cipher: VariableCipher | None) -> KeyCheck:
    """Try a sample of every sealed column; raise `StorageError` (one line) when
    sealed data is stored and no configured key opens any of it."""
    result = KeyCheck()
    async with engine.connect() as connection:
        for sealable in _sealables():
            column = sealable.table.c[sealable.column]
            rows = await connection.execute(
                select(column).where(column.is_not(None)).limit(_SAMPLE)
            )
            for (value,) in rows:
                if not is_sealed(value):
                    continue
                result.sealed += 1
                try:
                    open_value(value, cipher)
                    result.opened += 1
                except UnreadableData:
                    pass
    if result.none_fits:
        if cipher is None:
            raise StorageError(
                f"the stored data is encrypted; set {KEY_VARIABLE} to the key it was "
                "written with (see docs/security.md)"
            )
        raise StorageError(
            f"none of the {cipher.key_count} key(s) in {KEY_VARIABLE} opens the stored "
            "data: put the key it was written with in the list (see docs/security.md, "
            "'a lost key')"
        )
    if result.opened < result.sealed:
        log.warning(
            "some stored data opens with none of the keys sealed=%d opened=%d; those rows "
            "are reset when read (pausecheck keys rotate counts them)",
            result.sealed,
            result.opened,
        )
    return result


@dataclass(slots=True)
class Rotation:
    resealed: int = 0
    sealed_plain: int = 0
    unreadable: int = 0
    discarded: int = 0
    by_column: dict[str, int] = field(default_factory=dict)


async def rotate_keys(
    engine: AsyncEngine, cipher: VariableCipher, *, discard_unreadable: bool = False
) -> Rotation:
    """Seal every value again under the first key; see the module docstring."""
    rotation = Rotation()
    for sealable in _sealables():
        table = sealable.table
        column = table.c[sealable.column]
        keys = list(table.primary_key.columns)
        last: tuple[Any, ...] | None = None
        while True:
            async with engine.begin() as connection:
                batch = await _next_batch(connection, table, keys, column, last)
                if not batch:
                    break
                for row in batch:
                    key = tuple(row[: len(keys)])
                    await _rotate_one(
                        connection, sealable, keys, key, row[-1], cipher, rotation,
                        discard_unreadable,
                    )  # fmt: skip
                last = tuple(batch[-1][: len(keys)])
    rotation.sealed_plain += await _seal_plain_profiles(engine, cipher)
    return rotation


async def _seal_plain_profiles(engine: AsyncEngine, cipher: VariableCipher) -> int:
    """Crisis times and danger flags written before a key was set (plain columns)."""
    users = _t(UserRow)
    plain = users.c.sealed.is_(None) & (users.c.crisis_at.is_not(None) | users.c.unsafe)
    sealed = 0
    async with engine.begin() as connection:
        rows = await connection.execute(
            select(users.c.id, users.c.crisis_at, users.c.unsafe).where(plain)
        )
        for user_id, crisis_at, unsafe in rows.all():
            value = {
                "crisis_at": None if crisis_at is None else _utc(crisis_at).isoformat(),
                "unsafe": bool(unsafe),
            }
            await connection.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(sealed=cipher.seal_json(value), crisis_at=None, unsafe=False)
            )
            sealed += 1
    return sealed


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive UTC (storage.columns.UtcDateTime).
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


async def _next_batch(
    connection: AsyncConnection,
    table: Table,
    keys: list[Column[Any]],
    column: Column[Any],
    after: tuple[Any, ...] | None,
) -> list[Any]:
    from sqlalchemy import tuple_

    query = select(*keys, column).where(column.is_not(None))
    if after is not None:
        query = query.where(tuple_(*keys) > tuple_(*after))
    rows = await connection.execute(query.order_by(*keys).limit(_BATCH))
    return list(rows)


async def _rotate_one(
    connection: AsyncConnection,
    sealable: _Sealable,
    keys: list[Column[Any]],
    key: tuple[Any, ...],
    value: Any,
    cipher: VariableCipher,
    rotation: Rotation,
    discard: bool,
) -> None:
    table = sealable.table
    where = [k == v for k, v in zip(keys, key, strict=True)]
    name = f"{table.name}.{sealable.column}"
    if not is_sealed(value):
        if not sealable.seal_plain:
            return
        new = seal_value(value, cipher)
        rotation.sealed_plain += 1
    else:
        try:
            opened = open_value(value, cipher)
        except UnreadableData:
            rotation.unreadable += 1
            rotation.by_column[name] = rotation.by_column.get(name, 0) + 1
            if not discard:
                return
            rotation.discarded += 1
            if sealable.discarded is None:
                await connection.execute(delete(table).where(*where))
                return
            replacement = sealable.discarded()
            values: dict[str, Any] = {
                sealable.column: None if replacement is None else seal_value(replacement, cipher)
            }
            if table.name == "conversations":
                values.update(flow_id=None, node_id=None)
            await connection.execute(update(table).where(*where).values(**values))
            return
        if cipher.is_current(value["_enc"]):
            return
        new = cipher.seal_json(opened)
        rotation.resealed += 1
    await connection.execute(update(table).where(*where).values({sealable.column: new}))


async def rotate_database(
    url: str, keys: Sequence[str], *, discard_unreadable: bool = False
) -> Rotation:
    """`pausecheck keys rotate`: migrate, check (unless discarding: a lost key is what
    discarding is for), rotate, and close."""
    from storage.engine import create_engine_for
    from storage.migrate import upgrade_database

    cipher = VariableCipher(list(keys))
    engine = create_engine_for(url)
    try:
        await upgrade_database(engine)
        if not discard_unreadable:
            await check_keys(engine, cipher)
        return await rotate_keys(engine, cipher, discard_unreadable=discard_unreadable)
    finally:
        await engine.dispose()
