"""What the partner link keeps, and the store methods for it.

Part of the `StoreSession` protocol (dialogs.store): every method runs in the
event's one transaction. A link is one row from invitation to its end; each signal
is one row from the moment it is offered to the sender (its exact words fixed then)
to its delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from dialogs.store import UserKey

# The follow-up kind of a signal waiting for the end of the receiver's quiet hours.
PARTNER_SIGNAL = "signal"


class LinkStatus(StrEnum):
    # An invitation whose code is live (nobody has opened it yet).
    INVITED = "invited"
    # Someone opened the code: it is theirs alone now, waiting for them to agree.
    OPENED = "opened"
    ACTIVE = "active"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class PartnerLink:
    """One link between two people. `inviter_chat` and `partner_chat` are their
    private chats with the guide, where the other's signals arrive."""

    id: int
    inviter: UserKey
    inviter_chat: str
    partner: UserKey | None
    partner_chat: str | None
    status: LinkStatus
    created_at: datetime
    accepted_at: datetime | None = None
    ended_at: datetime | None = None

    def has(self, user: UserKey) -> bool:
        return user in (self.inviter, self.partner)

    def other(self, user: UserKey) -> tuple[UserKey, str] | None:
        """The other person and their private chat, once there is one."""
        if user == self.inviter:
            if self.partner is None or self.partner_chat is None:
                return None
            return self.partner, self.partner_chat
        return self.inviter, self.inviter_chat


class SignalStatus(StrEnum):
    # Shown to the sender with its exact words; not sent unless they tap Send.
    OFFERED = "offered"
    # Tapped during the receiver's quiet hours: goes at `due_at`.
    WAITING = "waiting"
    SENT = "sent"
    # The sender said not now, or the offer went stale.
    DECLINED = "declined"
    # Never delivered: the link ended or was paused before it could go.
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class PartnerSignal:
    """One signal. `words` are exactly what the receiver reads; `reply_to` is the
    signal it answers (a talk request, or the sender's own space signal)."""

    id: int
    link_id: int
    sender: UserKey
    kind: str
    words: str
    status: SignalStatus
    created_at: datetime
    due_at: datetime | None = None
    sent_at: datetime | None = None
    reply_to: int | None = None


class LinkRecords(Protocol):
    async def create_link(
        self, inviter: UserKey, chat_id: str, code_hash: str, at: datetime
    ) -> PartnerLink:
        """A new INVITED link whose code has this hash."""
        ...

    async def link_by_code(self, code_hash: str) -> PartnerLink | None:
        """The INVITED link with this code, if any (expired ones included)."""
        ...

    async def link_by_id(self, link_id: int) -> PartnerLink | None: ...

    async def links_of(self, user: UserKey) -> list[PartnerLink]:
        """The person's links that have not ended (as inviter or partner), newest first."""
        ...

    async def update_link(self, link: PartnerLink, *, code_hash: str | None = None) -> None:
        """Write back status, partner, chats and times; the code is kept only while
        the link is INVITED (`code_hash` None clears it)."""
        ...

    async def add_signal(
        self,
        link_id: int,
        sender: UserKey,
        kind: str,
        words: str,
        at: datetime,
        reply_to: int | None = None,
    ) -> PartnerSignal:
        """A new OFFERED signal."""
        ...

    async def signal_by_id(self, signal_id: int) -> PartnerSignal | None: ...

    async def update_signal(self, signal: PartnerSignal) -> None:
        """Write back status and times."""
        ...

    async def signals_sent_since(self, sender: UserKey, since: datetime) -> list[PartnerSignal]:
        """The sender's signals that went or wait to go (SENT, WAITING), created at
        or after `since`, oldest first."""
        ...

    async def signals_waiting(self, sender: UserKey) -> list[PartnerSignal]:
        """The sender's WAITING signals, oldest first."""
        ...

    async def withdraw_waiting(self, link_id: int, at: datetime) -> int:
        """Every WAITING signal of the link becomes WITHDRAWN; how many."""
        ...

    async def replies_to(self, signal_id: int) -> list[PartnerSignal]:
        """Signals that answer `signal_id` and went or wait to go."""
        ...
