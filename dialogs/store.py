"""The seam between the engine and persistence.

The engine opens one `StoreSession` per inbound event (or per due follow-up) and
everything it reads and writes goes through it; the session commits as one
transaction or not at all. `storage/` implements these protocols with SQLAlchemy;
tests may use the same implementation on an in-memory SQLite.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from dialogs.events import Address, Outbound
from dialogs.link.store import LinkRecords
from dialogs.reflection.store import ReflectionRecords

VarValue = str | int
# The follow-up kind of a group reflection's step timer (see dialogs.reflection.group).
REFLECTION_TIMER = "reflection"


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


@dataclass(frozen=True, slots=True)
class Profile:
    """What the guide keeps about a person beyond the running conversation.

    `unsafe` is the danger route flag: set when a screen or message suggests the
    person is not safe, cleared only when they say they are. The answers that set
    it are never stored. `crisis_at` is the last crisis signal.
    """

    consent_at: datetime | None = None
    adult: bool | None = None
    country: str | None = None
    crisis_at: datetime | None = None
    unsafe: bool = False
    screened: bool = False
    session_started_at: datetime | None = None
    last_active_at: datetime | None = None
    reminded_at: datetime | None = None
    # The role self-check's result: "contact", "space", "both" or "unsure". A habit
    # of the moment, not a label; it only tunes the wording of later flows.
    role: str | None = None
    # IANA zone name ("Europe/London"); None until the person has told us.
    zone: str | None = None
    # Quiet hours as local "HH:MM"; None means the defaults (22:00 to 08:00).
    quiet_start: str | None = None
    quiet_end: str | None = None
    # Recurring check-in: "daily" or "weekly" (on `checkin_weekday`, 0 = Monday) at
    # `checkin_time` local; paused until `checkin_paused_until` when set.
    checkin_cadence: str | None = None
    checkin_time: str | None = None
    checkin_weekday: int | None = None
    checkin_paused_until: datetime | None = None
    # Set when the platform said the person blocked the bot or closed DMs.
    unreachable_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal row read back: a tap (`kind` "choice", the option id) or a number
    ("rating", 0 to 10), with where in which flow it was given. Never free text."""

    at: datetime
    flow_id: str
    step_id: str
    kind: str
    value: str


class FollowUpStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    # The engine has run and its messages are stored on the row; only the send and
    # the final mark remain. A crash here is recovered by re-sending those messages.
    DELIVERING = "delivering"
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
    # "once" for a one-off follow-up, "checkin" for an occurrence of a recurring one,
    # REFLECTION_TIMER for the end of a group reflection's step.
    kind: str = "once"


class ClaimLost(Exception):
    """The follow-up is no longer the caller's claim: another worker took it over
    after its lease (the caller stalled), or it was given back. Whatever the other
    records stands; the caller records nothing."""


@dataclass(frozen=True, slots=True)
class FollowUp:
    id: int
    user: UserKey
    chat_id: str
    flow_id: str
    due_at: datetime
    expires_at: datetime
    status: FollowUpStatus
    created_at: datetime
    kind: str = "once"
    # The messages the engine rendered, once DELIVERING: what a recovery re-sends.
    messages: tuple[Outbound, ...] = ()


class OutboundStatus(StrEnum):
    """What became of a message the guide owed someone (the outbox's rows)."""

    # Committed, not yet accepted by the platform: sent after commit, or by the
    # resend sweep after a crash.
    PENDING = "pending"
    SENT = "sent"
    # Not sent, for a reason recorded with it: too old to make sense ("expired"), the
    # person cannot be reached ("unreachable"), the platform refuses it ("refused").
    DROPPED = "dropped"
    # Replaced by something else that said the same (a button's toast).
    SUPERSEDED = "superseded"


class OutboundKind(StrEnum):
    """Which lane a row is sent on, and how old it may get before it is dropped."""

    # An answer to something a person just did: goes first.
    REPLY = "reply"
    # A due follow-up's messages, a group reflection's timer posts: a wave.
    SCHEDULED = "scheduled"


@dataclass(frozen=True, slots=True)
class OutboundRow:
    """One message owed to `address`, stored before it is sent.

    `seq` orders the rows of one chat (platform and chat id) in the order their
    transactions committed. `first` says that when it was written, every earlier
    row to its address had already gone (sent or dropped) or was written in the same
    transaction: nothing can be owed before it, so it may go without asking the
    store (`Delivery`). False when not known (a row read back by the sweep)."""

    id: int
    address: Address
    seq: int
    message: Outbound
    kind: OutboundKind
    created_at: datetime
    first: bool = False


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """What `Store.take_chat` found for one address: the rows to send now, in order
    (`rows`, from the lowest pending seq), and the pending rows of that address, up
    to the asked seq, that must wait behind an earlier row another process is
    sending (`waiting`: those this process may release; `waiting_behind` is the row
    they wait for); `superseded`, rows it recorded superseded instead of sending
    again, because the person's conversation moved on since they were written."""

    rows: tuple[OutboundRow, ...]
    waiting: tuple[int, ...] = ()
    waiting_behind: int | None = None
    # The row waited for is this process's own, not yet handed over by its sender.
    behind_own: bool = False
    superseded: tuple[int, ...] = ()


class StoreSession(ReflectionRecords, LinkRecords, Protocol):
    """One unit of work. Every method acts inside the same database transaction."""

    async def claim_event(self, event_key: str, at: datetime, user: UserKey) -> bool:
        """Record an event id as processed (linked to the user, so /forget removes it);
        False if it was already recorded. Creates the user's row if needed."""
        ...

    async def load_profile(self, user: UserKey) -> Profile:
        """The user's profile; an empty Profile for someone never seen."""
        ...

    async def save_profile(self, user: UserKey, profile: Profile) -> None: ...

    async def count_referral(self, day: date, country: str | None, signal: str) -> None:
        """Add one to the anonymous count of safety referrals for (day, country,
        signal). Nothing links the count to a person."""
        ...

    async def export_user(self, user: UserKey) -> dict[str, Any]:
        """Everything stored about the person, as JSON-ready data (one key per table)."""
        ...

    async def forget_user(self, user: UserKey, *, asked_in: str | None = None) -> int:
        """Delete every row about the person in every table; returns rows deleted.
        `asked_in`: the key of the event that asked (their /forget), recorded again
        as processed by nobody, so that the platform delivering it again does not
        start a conversation with them afresh."""
        ...

    async def load_state(self, user: UserKey, at: datetime) -> ConversationState:
        """The user's conversation state (created empty on first contact); locks the
        user's row so concurrent events for one person apply one after the other."""
        ...

    async def save_state(self, user: UserKey, state: ConversationState, at: datetime) -> None: ...

    async def append_journal(
        self, user: UserKey, at: datetime, flow_id: str, node_id: str, kind: str, value: str
    ) -> None:
        """Record a choice, a rating or which wording of a step was shown. Never
        called with free text."""
        ...

    async def last_journal_value(
        self, user: UserKey, flow_id: str, node_id: str, kind: str
    ) -> str | None:
        """The value of the person's latest journal row for this flow, step and kind
        (the last wording shown, the last answer to "what helped"), or None."""
        ...

    async def read_journal(self, user: UserKey, since: datetime) -> list[JournalEntry]:
        """The person's journal from `since` on, oldest first (for /insights)."""
        ...

    async def schedule_followup(self, user: UserKey, request: FollowUpRequest) -> bool:
        """Insert a pending follow-up; False if its dedupe key already exists."""
        ...

    async def cancel_followups(self, user: UserKey, kind: str | None = None) -> int:
        """Cancel the user's pending follow-ups (only those of `kind`, when given;
        without it, every kind but a reflection's step timer); returns how many."""
        ...

    async def cancel_followup(self, user: UserKey, followup_id: int) -> bool:
        """Cancel one pending follow-up if it belongs to `user`; False otherwise (not
        theirs, unknown, or no longer pending)."""
        ...

    async def mark_delivering(
        self, followup_id: int, messages: Sequence[Outbound], at: datetime
    ) -> None:
        """Store the rendered messages on a CLAIMED row and move it to DELIVERING."""
        ...

    async def queue_followup(
        self,
        followup_id: int,
        address: Address,
        messages: Sequence[Outbound],
        at: datetime,
        *,
        turn: int | None = None,
    ) -> list[OutboundRow]:
        """The follow-up's rendered messages become outbox rows (kind SCHEDULED, to
        `address` unless a message says otherwise), and the follow-up is SENT: from
        here on the outbox owes them. Needs a CLAIMED or DELIVERING row. `turn` as
        for `enqueue_outbound`; the rows also keep the follow-up's id."""
        ...

    async def enqueue_outbound(
        self,
        owner: UserKey | None,
        address: Address,
        messages: Sequence[Outbound],
        at: datetime,
        kind: OutboundKind = OutboundKind.REPLY,
        *,
        turn: int | None = None,
    ) -> list[OutboundRow]:
        """Store messages to send after commit, one row each, in this transaction: a
        message goes to its own `to` or else to `address`, after everything already
        stored for that chat. `owner` is whose turn said them (forgetting them
        deletes the rows); None for words that outlive their person (/forget's last
        words): nobody owns those rows, and they are deleted as soon as their send is
        settled (sent, dropped or superseded). Returns the rows in the order given. Messages with an
        attachment cannot be stored (files are never kept): callers send those
        directly. `turn`: the owner's conversation turn they were rendered at, when
        `address` is the owner's private chat: should they have to be sent again
        (a failure, a crash) once the conversation is past it, they are recorded
        superseded instead (`claim_unsent`, `take_chat`)."""
        ...

    async def pending_followups(self, user: UserKey) -> list[FollowUp]:
        """The person's own planned messages (a reflection's step timer is not one)."""
        ...

    async def get_followup(self, followup_id: int) -> FollowUp | None: ...

    async def open_followup(self, followup_id: int) -> tuple[FollowUp, Profile] | None:
        """`get_followup` and its owner's `load_profile` in one, for a due follow-up
        about to run; None when the row is gone. The owner's row is locked first (as
        by `load_state`), so the status read is the one this transaction acts on. A
        store may read the owner's conversation with them, for a later `load_state`
        (which then stamps last seen as usual)."""
        ...

    async def set_followup_status(
        self,
        followup_id: int,
        status: FollowUpStatus,
        at: datetime,
        *,
        only_from: FollowUpStatus | None = None,
    ) -> None:
        """With `only_from`, nothing changes unless the follow-up is in that status."""
        ...

    async def postpone_followup(self, followup_id: int, due_at: datetime) -> None:
        """Move a claimed follow-up back to pending at a later due time."""
        ...

    async def open_event(
        self, event_key: str, at: datetime, user: UserKey
    ) -> tuple[ConversationState, Profile] | None:
        """`claim_event`, `load_state` and `load_profile` in one, for an inbound event:
        the state (the user's row locked) and the profile, or None when the event was
        already claimed. A store may stamp last seen with the session's `save_turn`."""
        ...

    async def save_turn(
        self, user: UserKey, state: ConversationState, profile: Profile, at: datetime
    ) -> None:
        """`save_state` and `save_profile` in one; a store may leave out what did not
        change since it loaded them in this session (state is stamped `at` always)."""
        ...


class Store(Protocol):
    def session(self) -> AbstractAsyncContextManager[StoreSession]:
        """Begin a transaction; commit on clean exit, roll back on an exception.
        Inside `batch()`, in the same task: a savepoint of the batch's transaction."""
        ...

    def batch(self) -> AbstractAsyncContextManager[None]:
        """One transaction for everything the current task does inside it: each
        `session()` becomes a savepoint (its failure undoes only its own work), and
        all of them commit together at the end, one synced commit for the lot."""
        ...

    def someone_waiting(self) -> bool:
        """Whether a person's transaction is waiting for the one in progress: work that
        holds the database for long (a batch) commits then and lets them in. Always
        False where writers do not queue (PostgreSQL)."""
        ...

    async def claim_unsent(
        self,
        now: datetime,
        lease: timedelta,
        platforms: Collection[str],
        *,
        held: Collection[int] = (),
        startup: bool = False,
        limit: int = 1000,
    ) -> list[OutboundRow]:
        """Take pending outbox rows of `platforms` whose sender has had them longer
        than `lease` (not those in `held`, which this process is sending) and return
        them in order per chat, and rows released by another process (claimed by
        nobody). With `startup`, where one process sends for a database (SQLite),
        also every row another process claimed: it is gone. A row whose person's
        conversation is past the turn it was rendered at is recorded superseded
        ("conversation moved on") instead of returned."""
        ...

    async def take_chat(
        self,
        address: Address,
        up_to: int,
        now: datetime,
        lease: timedelta,
        *,
        have: Mapping[int, OutboundRow],
        elsewhere: Collection[int] = (),
        known: Collection[int] = (),
    ) -> ChatTurn:
        """Take every pending row of `address` with a seq up to `up_to`, lowest first,
        that this process may send now: its own that are in `have` or `known` (rows
        a send left, or a send waiting for its turn, holds), those released by
        another (claimed by nobody) and those whose sender has had them longer than
        `lease`. It stops at the first it may not take (another process is sending
        it, it is in `elsewhere`, or it is this process's own and not yet handed over
        by its sender, `behind_own`): that row and every later one wait. Rows in
        `have` are returned as given (not read back). A row taken from another
        sender (dead, released, or past its lease) whose person's conversation is
        past the turn it was rendered at is recorded superseded ("conversation moved
        on"), not returned."""
        ...

    async def mark_outbound(
        self,
        marks: Sequence[tuple[int, OutboundStatus, str | None]],
        at: datetime,
    ) -> None:
        """Record what became of pending rows: (id, status, reason). A row no longer
        pending keeps no message. Unknown or finished ids are left alone."""
        ...

    async def release_outbound(self, ids: Collection[int], reason: str, at: datetime) -> None:
        """Pending rows this process cannot deliver (another's address): keep them
        pending with `reason`, claimed by nobody, so any process's next sweep whose
        sender reaches them takes them at once."""
        ...

    async def purge_outbound(self, now: datetime, max_age: timedelta) -> int:
        """Delete finished outbox rows last changed more than `max_age` ago."""
        ...

    async def claim_due(
        self, now: datetime, limit: int, platforms: Collection[str] | None = None
    ) -> list[FollowUp]:
        """Atomically move up to `limit` pending follow-ups with `due_at <= now` to
        CLAIMED and return them, oldest first. A row is returned to one caller only.
        With `platforms`, only rows for those platforms are claimed: a process that
        cannot reach Telegram must leave Telegram's follow-ups for one that can."""
        ...

    async def purge(
        self, now: datetime, journal_max_age: timedelta, events_max_age: timedelta
    ) -> tuple[int, int]:
        """Delete journal rows and processed event ids older than their limits;
        returns (journal rows, event rows) deleted."""
        ...

    async def purge_links(self, now: datetime, signals_max_age: timedelta) -> int:
        """Delete partner signals older than `signals_max_age`, links that ended
        longer ago, and invitations never accepted; returns the signals deleted."""
        ...

    async def purge_reflections(self, now: datetime, answers_max_age: timedelta) -> int:
        """For reflections that ended more than `answers_max_age` ago: delete every
        answer its author did not save, the participant list and the session itself
        (saved answers stay, theirs alone). Returns the answers deleted."""
        ...

    async def recover(
        self,
        now: datetime,
        lease: timedelta,
        platforms: Collection[str] | None = None,
        *,
        startup: bool = False,
    ) -> list[FollowUp]:
        """Undo what a crashed dispatcher left behind, for rows claimed before
        `now - lease`: CLAIMED rows go back to PENDING (the engine never committed),
        and DELIVERING rows are re-claimed (claimed_at = now) and returned with their
        stored messages, for the caller to send and mark SENT. With `startup`, where
        one process dispatches for a database (SQLite), every CLAIMED row at once."""
        ...

    async def next_due_at(self, platforms: Collection[str] | None = None) -> datetime | None:
        """Due time of the earliest pending follow-up (on `platforms`, when given), for
        waking the dispatcher. The filter matters: a due row this process cannot send
        would otherwise wake it again and again."""
        ...
