"""The partner link part of `SqlStoreSession` (dialogs.link.store), and its purge.

A mixin, so the session stays one object with one transaction; it relies on the
session's `_session` and `_user_id`. Links name their two people by user id, so
forgetting either deletes the link and every signal in it (ON DELETE CASCADE, and
explicitly in storage.privacy).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from dialogs.link.store import LinkStatus, PartnerLink, PartnerSignal, SignalStatus
from dialogs.store import UserKey
from storage.models import PartnerLinkRow, PartnerSignalRow, UserRow
from storage.privacy import count_deleted

_INVITER = aliased(UserRow)
_PARTNER = aliased(UserRow)
_SENDER = aliased(UserRow)
_GONE_OR_WAITING = (SignalStatus.SENT.value, SignalStatus.WAITING.value)


class LinkRows:
    _session: AsyncSession

    if TYPE_CHECKING:
        # SqlStoreSession's; declared for the type checker only.
        async def _user_id(self, user: UserKey, at: datetime, *, lock: bool = False) -> int: ...

    async def create_link(
        self, inviter: UserKey, chat_id: str, code_hash: str, at: datetime
    ) -> PartnerLink:
        row = PartnerLinkRow(
            inviter_id=await self._user_id(inviter, at),
            inviter_chat=chat_id,
            code_hash=code_hash,
            status=LinkStatus.INVITED.value,
            created_at=at,
        )
        self._session.add(row)
        await self._session.flush()
        return PartnerLink(row.id, inviter, chat_id, None, None, LinkStatus.INVITED, at)

    async def link_by_code(self, code_hash: str) -> PartnerLink | None:
        found = await self._links(
            (PartnerLinkRow.code_hash == code_hash)
            & (PartnerLinkRow.status == LinkStatus.INVITED.value)
        )
        return found[0] if found else None

    async def link_by_id(self, link_id: int) -> PartnerLink | None:
        found = await self._links(PartnerLinkRow.id == link_id)
        return found[0] if found else None

    async def links_of(self, user: UserKey) -> list[PartnerLink]:
        person = (UserRow.platform == user.platform) & (UserRow.platform_user_id == user.user_id)
        user_id = select(UserRow.id).where(person).scalar_subquery()
        return await self._links(
            or_(PartnerLinkRow.inviter_id == user_id, PartnerLinkRow.partner_id == user_id)
            & (PartnerLinkRow.status != LinkStatus.ENDED.value)
        )

    async def update_link(self, link: PartnerLink, *, code_hash: str | None = None) -> None:
        partner_id = None
        if link.partner is not None:
            partner_id = await self._user_id(link.partner, link.created_at)
        await self._session.execute(
            update(PartnerLinkRow)
            .where(PartnerLinkRow.id == link.id)
            .values(
                partner_id=partner_id,
                partner_chat=link.partner_chat,
                status=link.status.value,
                accepted_at=link.accepted_at,
                ended_at=link.ended_at,
                # The code opens nothing once the invitation is no longer waiting.
                **({} if link.status is LinkStatus.INVITED else {"code_hash": code_hash}),
            )
        )

    async def add_signal(
        self,
        link_id: int,
        sender: UserKey,
        kind: str,
        words: str,
        at: datetime,
        reply_to: int | None = None,
    ) -> PartnerSignal:
        row = PartnerSignalRow(
            link_id=link_id,
            sender_id=await self._user_id(sender, at),
            kind=kind,
            words=words,
            status=SignalStatus.OFFERED.value,
            reply_to=reply_to,
            created_at=at,
        )
        self._session.add(row)
        await self._session.flush()
        return PartnerSignal(
            row.id, link_id, sender, kind, words, SignalStatus.OFFERED, at, reply_to=reply_to
        )

    async def signal_by_id(self, signal_id: int) -> PartnerSignal | None:
        found = await self._signals(PartnerSignalRow.id == signal_id)
        return found[0] if found else None

    async def update_signal(self, signal: PartnerSignal) -> None:
        await self._session.execute(
            update(PartnerSignalRow)
            .where(PartnerSignalRow.id == signal.id)
            .values(
                status=signal.status.value,
                reply_to=signal.reply_to,
                due_at=signal.due_at,
                sent_at=signal.sent_at,
            )
        )

    async def signals_sent_since(self, sender: UserKey, since: datetime) -> list[PartnerSignal]:
        return await self._signals(
            _sent_by(sender)
            & PartnerSignalRow.status.in_(_GONE_OR_WAITING)
            & (PartnerSignalRow.created_at >= since)
        )

    async def signals_waiting(self, sender: UserKey) -> list[PartnerSignal]:
        return await self._signals(
            _sent_by(sender) & (PartnerSignalRow.status == SignalStatus.WAITING.value)
        )

    async def withdraw_waiting(self, link_id: int, at: datetime) -> int:
        return await count_deleted_or_updated(
            self._session,
            update(PartnerSignalRow)
            .where(
                PartnerSignalRow.link_id == link_id,
                PartnerSignalRow.status == SignalStatus.WAITING.value,
            )
            .values(status=SignalStatus.WITHDRAWN.value),
        )

    async def replies_to(self, signal_id: int) -> list[PartnerSignal]:
        return await self._signals(
            (PartnerSignalRow.reply_to == signal_id) & PartnerSignalRow.status.in_(_GONE_OR_WAITING)
        )

    async def _links(self, condition: ColumnElement[bool]) -> list[PartnerLink]:
        rows = await self._session.execute(
            select(
                PartnerLinkRow,
                _INVITER.platform,
                _INVITER.platform_user_id,
                _PARTNER.platform,
                _PARTNER.platform_user_id,
            )
            .join(_INVITER, _INVITER.id == PartnerLinkRow.inviter_id)
            .outerjoin(_PARTNER, _PARTNER.id == PartnerLinkRow.partner_id)
            .where(condition)
            .order_by(PartnerLinkRow.id.desc())
            .execution_options(populate_existing=True)
        )
        found = []
        for row, inviter_platform, inviter_id, partner_platform, partner_id in rows:
            partner = None
            if partner_platform is not None and partner_id is not None:
                partner = UserKey(partner_platform, partner_id)
            found.append(
                PartnerLink(
                    row.id,
                    UserKey(inviter_platform, inviter_id),
                    row.inviter_chat,
                    partner,
                    row.partner_chat,
                    LinkStatus(row.status),
                    row.created_at,
                    row.accepted_at,
                    row.ended_at,
                )
            )
        return found

    async def _signals(self, condition: ColumnElement[bool]) -> list[PartnerSignal]:
        rows = await self._session.execute(
            select(PartnerSignalRow, _SENDER.platform, _SENDER.platform_user_id)
            .join(_SENDER, _SENDER.id == PartnerSignalRow.sender_id)
            .where(condition)
            .order_by(PartnerSignalRow.created_at, PartnerSignalRow.id)
            .execution_options(populate_existing=True)
        )
        return [
            PartnerSignal(
                row.id,
                row.link_id,
                UserKey(platform, user_id),
                row.kind,
                row.words,
                SignalStatus(row.status),
                row.created_at,
                row.due_at,
                row.sent_at,
                row.reply_to,
            )
            for row, platform, user_id in rows
        ]


def _sent_by(sender: UserKey) -> ColumnElement[bool]:
    return PartnerSignalRow.sender_id == (
        select(UserRow.id)
        .where(UserRow.platform == sender.platform, UserRow.platform_user_id == sender.user_id)
        .scalar_subquery()
    )


async def count_deleted_or_updated(session: AsyncSession, statement: Any) -> int:
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def purge_links(session: AsyncSession, now: datetime, max_age: timedelta) -> int:
    """Delete signals older than `max_age`, links that ended longer ago than that,
    and invitations nobody accepted within a day and `max_age`; returns the signals
    deleted."""
    cutoff = now - max_age
    signals = await count_deleted(
        session, delete(PartnerSignalRow).where(PartnerSignalRow.created_at < cutoff)
    )
    unaccepted = (
        PartnerLinkRow.status.in_((LinkStatus.INVITED.value, LinkStatus.OPENED.value))
    ) & (PartnerLinkRow.created_at < cutoff - timedelta(hours=24))
    ended = (PartnerLinkRow.status == LinkStatus.ENDED.value) & (PartnerLinkRow.ended_at < cutoff)
    # Their remaining signals go with them (ON DELETE CASCADE, and explicitly here).
    gone = select(PartnerLinkRow.id).where(ended | unaccepted)
    signals += await count_deleted(
        session, delete(PartnerSignalRow).where(PartnerSignalRow.link_id.in_(gone))
    )
    await session.execute(delete(PartnerLinkRow).where(ended | unaccepted))
    return signals
