"""The seam between the engine and persistence.

The engine opens one `StoreSession` per inbound event (or per due follow-up) and
everything it reads and writes goes through it; the session commits as one
transaction or not at all. `storage/` implements these protocols with SQLAlchemy;
tests may use the same implementation on an in-memory SQLite.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

VarValue = str | int


@dataclass(frozen=True, slots=True)
class UserKey:
    platform: str
    user_id: str


@dataclass(frozen=True, slots=True)
class ConversationState:
    """Where a person is in a flow. `flow_id is None` means no flow is running.

    `turn` grows by one every time a step waits for input; buttons carry it, so a
    press on an older message is recognised as stale. `content_version` is the hash
    of the flow as it was when the state was written.
    """

    flow_id: str | None = None
    node_id: str | None = None
    variables: Mapping[str, VarValue] = field(default_factory=dict)
    turn: int = 0
    content_version: str = ""
    chat_id: str = ""
    # When the state was last written; a flow untouched for long counts as abandoned.
    updated_at: datetime | None = None


class FollowUpStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    MISSED = "missed"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FollowUpRequest:
    """Ask for `flow_id` to start for the user at `due_at` (UTC), in chat `chat_id`.

    `expires_at`: past this, a late follow-up is recorded as missed instead of sent.
    `dedupe_key` is unique in the store: asking twice for the same thing is a no-op.
    """

    flow_id: str
    chat_id: str
    due_at: datetime
    expires_at: datetime
    dedupe_key: str


@dataclass(frozen=True, slots=True)
class FollowUp:
    id: int
    user: UserKey
    chat_id: str
    flow_id: str
    due_at: datetime
    expires_at: datetime
    status: FollowUpStatus


class StoreSession(Protocol):
    """One unit of work. Every method acts inside the same database transaction."""

    async def claim_event(self, event_key: str, at: datetime) -> bool:
        """Record an event id as processed; False if it was already recorded."""
        ...

    async def load_state(self, user: UserKey, at: datetime) -> ConversationState:
        """The user's conversation state (created empty on first contact); locks the
        user's row so concurrent events for one person apply one after the other."""
        ...

    async def save_state(self, user: UserKey, state: ConversationState, at: datetime) -> None: ...

    async def append_journal(
        self, user: UserKey, at: datetime, flow_id: str, node_id: str, kind: str, value: str
    ) -> None:
        """Record a choice or a rating. Never called with free text."""
        ...

    async def schedule_followup(self, user: UserKey, request: FollowUpRequest) -> bool:
        """Insert a pending follow-up; False if its dedupe key already exists."""
        ...

    async def cancel_followups(self, user: UserKey) -> int:
        """Cancel every pending follow-up of the user; returns how many."""
        ...

    async def pending_followups(self, user: UserKey) -> list[FollowUp]: ...

    async def get_followup(self, followup_id: int) -> FollowUp | None: ...

    async def set_followup_status(
        self, followup_id: int, status: FollowUpStatus, at: datetime
    ) -> None: ...

    async def postpone_followup(self, followup_id: int, due_at: datetime) -> None:
        """Move a claimed follow-up back to pending at a later due time."""
        ...


class Store(Protocol):
    def session(self) -> AbstractAsyncContextManager[StoreSession]:
        """Begin a transaction; commit on clean exit, roll back on an exception."""
        ...

    async def claim_due(
        self, now: datetime, limit: int, platforms: Collection[str] | None = None
    ) -> list[FollowUp]:
        """Atomically move up to `limit` pending follow-ups with `due_at <= now` to
        CLAIMED and return them, oldest first. A row is returned to one caller only.
        With `platforms`, only rows for those platforms are claimed: a process that
        cannot reach Telegram must leave Telegram's follow-ups for one that can."""
        ...

    async def next_due_at(self, platforms: Collection[str] | None = None) -> datetime | None:
        """Due time of the earliest pending follow-up (on `platforms`, when given), for
        waking the dispatcher. The filter matters: a due row this process cannot send
        would otherwise wake it again and again."""
        ...
