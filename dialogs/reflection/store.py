"""What the engine keeps about group reflections, and the store methods for it.

Part of the `StoreSession` protocol (dialogs.store): every method runs in the
event's one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from dialogs.store import UserKey


class ReflectionStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class ReflectionSession:
    """One run of a reflection in one group chat.

    `token` is random and public (it is in buttons and deep links); it names the
    session without revealing the group. While RUNNING, the current step ends at
    `step_due_at`; while PAUSED, `remaining_seconds` is what was left of it.
    `timer` is the dedupe key of the follow-up row that will end the current step,
    so a control can cancel exactly that one.
    """

    id: int
    token: str
    platform: str
    chat_id: str
    reflection_id: str
    facilitator: UserKey
    minutes: int
    step_index: int
    status: ReflectionStatus
    step_due_at: datetime | None
    remaining_seconds: int | None
    timer: str | None
    created_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Participant:
    user: UserKey
    # Where their private prompts go (their private chat with the guide).
    chat_id: str
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class ReflectionAnswer:
    user: UserKey
    step_id: str
    choice: str | None
    text: str | None
    tally: str | None
    shared: bool
    saved: bool
    at: datetime


class ReflectionRecords(Protocol):
    async def create_reflection(
        self,
        *,
        token: str,
        platform: str,
        chat_id: str,
        reflection_id: str,
        facilitator: UserKey,
        minutes: int,
        at: datetime,
    ) -> ReflectionSession:
        """A new RUNNING session at step 0 (no timer yet)."""
        ...

    async def reflection_by_token(self, token: str) -> ReflectionSession | None: ...

    async def open_reflection_in(self, platform: str, chat_id: str) -> ReflectionSession | None:
        """The session running or paused in a group chat, or started there and since
        moved (to a Discord thread: its `chat_id` says where it is now), if any."""
        ...

    async def update_reflection(self, session: ReflectionSession) -> None:
        """Write back chat, step, status, timer and times (the rest never changes)."""
        ...

    async def add_participant(
        self, session_id: int, user: UserKey, chat_id: str, at: datetime
    ) -> bool:
        """False if they had already joined."""
        ...

    async def participants(self, session_id: int) -> list[Participant]: ...

    async def reflections_joined(self, user: UserKey) -> list[ReflectionSession]:
        """Open (running or paused) sessions the person has joined, newest first."""
        ...

    async def save_answer(self, session_id: int, answer: ReflectionAnswer) -> None:
        """Insert or replace the person's answer to one step."""
        ...

    async def get_answer(
        self, session_id: int, user: UserKey, step_id: str
    ) -> ReflectionAnswer | None: ...

    async def mark_answer(
        self,
        session_id: int,
        user: UserKey,
        step_id: str,
        *,
        shared: bool | None = None,
        saved: bool | None = None,
    ) -> None: ...

    async def answers(self, session_id: int) -> list[ReflectionAnswer]:
        """Every answer in the session, without their text (for counting only)."""
        ...

    async def cancel_timer(self, dedupe_key: str) -> bool:
        """Cancel the pending follow-up with this dedupe key, if there is one."""
        ...
