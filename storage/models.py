"""The database schema. `migrations/versions` must stay in step with this file."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Double,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.columns import UtcDateTime

# Deterministic constraint names: Alembic's SQLite batch mode recreates tables and
# can only drop or alter constraints it can name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Ids of users and follow-ups are held outside the database (scheduler jobs, logs);
# AUTOINCREMENT stops SQLite from reusing the id of a deleted row.
_NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id"), _NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String)
    platform_user_id: Mapped[str] = mapped_column(String)
    preferences: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The profile (dialogs.store.Profile). Declared last, in this order, because
    # migration 0002 appends them with ALTER TABLE ADD COLUMN.
    consent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    adult: Mapped[bool | None]
    country: Mapped[str | None] = mapped_column(String(8))
    crisis_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    unsafe: Mapped[bool] = mapped_column(default=False, server_default=false())
    screened: Mapped[bool] = mapped_column(default=False, server_default=false())
    session_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_active_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Added by migration 0003.
    role: Mapped[str | None] = mapped_column(String(16))
    # Added by migration 0004, which also dropped the unused `timezone` column.
    zone: Mapped[str | None] = mapped_column(String(64))
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    checkin_cadence: Mapped[str | None] = mapped_column(String(16))
    checkin_time: Mapped[str | None] = mapped_column(String(5))
    checkin_weekday: Mapped[int | None]
    checkin_paused_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    unreachable_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Added by migration 0007. With an encryption key, the crisis time and the danger
    # flag are kept here, sealed ({"_enc": token}; storage.sealed_profile), and
    # `crisis_at` and `unsafe` above stay empty.
    sealed: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Added by migration 0012: the newest Telegram update id handled for this person
    # in webhook mode (bot.telegram.inbox), so an older update that arrives late is
    # known to be late; it never goes back.
    last_update_id: Mapped[int | None] = mapped_column(BigInteger)


class ConversationRow(Base):
    __tablename__ = "conversations"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    flow_id: Mapped[str | None] = mapped_column(String)
    node_id: Mapped[str | None] = mapped_column(String)
    variables: Mapped[dict[str, str | int]] = mapped_column(JSON)
    turn: Mapped[int]
    content_version: Mapped[str] = mapped_column(String)
    chat_id: Mapped[str] = mapped_column(String)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class JournalEntryRow(Base):
    """A choice or rating. There is deliberately no column for free text."""

    __tablename__ = "journal"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    flow_id: Mapped[str] = mapped_column(String)
    node_id: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String)
    value: Mapped[str] = mapped_column(String)


class FollowUpRow(Base):
    __tablename__ = "followups"
    __table_args__ = (
        # Serves the dispatcher's "pending and due, oldest first" scan.
        Index("ix_followups_status_due_at", "status", "due_at"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # Indexed for cancel/list by user and so PostgreSQL's ON DELETE CASCADE is cheap.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[str] = mapped_column(String)
    flow_id: Mapped[str] = mapped_column(String)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String)
    dedupe_key: Mapped[str] = mapped_column(String, unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Added by migration 0004. "once" or "checkin" (dialogs.store.FollowUpRequest.kind).
    kind: Mapped[str] = mapped_column(String(16), default="once", server_default="once")
    # The rendered messages while DELIVERING, cleared on the next status: a JSON list
    # (storage.outbound_json), or {"_enc": token} when sealed with the store's cipher.
    messages: Mapped[list[Any] | dict[str, Any] | None] = mapped_column(JSON)
    # Added by migration 0014 (last, as ADD COLUMN puts it). Which worker
    # (`SqlStore.worker`) holds the claim; None when not claimed, or claimed before
    # 0014 (storage/liveness.py takes a dead worker's claims back).
    claimed_by: Mapped[str | None] = mapped_column(String(32))


class OutboundRow(Base):
    """One message the guide owes someone (dialogs.store.OutboundRow): written in the
    same transaction as the turn or follow-up that said it, sent after commit, and
    marked when the platform accepted it (`status`). `message` is the rendered
    `Outbound` as JSON (storage.outbound_json), sealed with the store's cipher when a
    key is set, and cleared once the row is no longer pending."""

    __tablename__ = "outbound"
    __table_args__ = (
        # Serves "pending rows of these platforms, claimed before the lease" (the resend
        # sweep) and the purge of old finished rows.
        Index("ix_outbound_status_claimed_at", "status", "claimed_at"),
        # Serves the order within a chat, and "anything pending before this row in
        # its chat?" without walking the chat's finished rows.
        Index("ix_outbound_chat", "platform", "chat_id", "status", "seq"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # Whose turn or follow-up produced it; forgetting them deletes it. None for
    # /forget's last words, which outlive the person and are deleted once settled
    # (migration 0015).
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # Where it goes (dialogs.events.Address).
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String)
    recipient: Mapped[str] = mapped_column(String)
    private: Mapped[bool]
    # Per (platform, chat_id), from outbound_chats: the order the chat sees.
    seq: Mapped[int]
    # "reply" (to something a person just did) or "scheduled" (a follow-up, a timer).
    kind: Mapped[str] = mapped_column(String(16))
    # "pending", "sent", "dropped" or "superseded" (dialogs.store.OutboundStatus).
    status: Mapped[str] = mapped_column(String(16))
    # Why a row was dropped or superseded ("expired", "unreachable", "toast"...).
    reason: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Who is sending it, since when: the resend sweep takes rows whose sender has had
    # longer than the lease.
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # What it was rendered against: the owner's conversation turn (rows to their own
    # chat from their turn or follow-up; None otherwise) and the follow-up that said
    # it. Sent again after a failure or a crash only if the turn is still current.
    turn: Mapped[int | None]
    followup_id: Mapped[int | None]


class OutboundChatRow(Base):
    """The last sequence number given out per chat. Taking the next one locks this
    row until commit, so on every database the order of `outbound.seq` in a chat is
    the order in which the transactions that wrote them committed."""

    __tablename__ = "outbound_chats"
    __table_args__ = (PrimaryKeyConstraint("platform", "chat_id"),)

    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String)
    last_seq: Mapped[int]


class ProcessedEventRow(Base):
    __tablename__ = "processed_events"

    event_key: Mapped[str] = mapped_column(String, primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # Nullable: events claimed before migration 0002 belong to nobody known. Indexed
    # so that the cascade from a deleted user does not scan the table.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )


class ReferralCountRow(Base):
    """How many safety referrals were shown, per day, country and signal.

    Deliberately anonymous: no user id, no time finer than the day, so the counts
    survive /forget and cannot be traced back to a person.
    """

    __tablename__ = "referrals"
    __table_args__ = (PrimaryKeyConstraint("day", "country", "signal"),)

    day: Mapped[date]
    country: Mapped[str] = mapped_column(String(16))
    signal: Mapped[str] = mapped_column(String(16))
    count: Mapped[int]


class ReflectionSessionRow(Base):
    """One run of a group reflection (dialogs.reflection.store.ReflectionSession).

    Belongs to its facilitator: forgetting them ends it (participants' saved answers
    stay, theirs alone)."""

    __tablename__ = "reflection_sessions"
    __table_args__ = (
        # Serve "the reflection open in this group chat", where it runs now or
        # where it started (a Discord channel whose thread it moved to).
        Index("ix_reflection_sessions_chat", "platform", "chat_id", "status"),
        Index("ix_reflection_sessions_origin", "platform", "origin_chat_id", "status"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    token: Mapped[str] = mapped_column(String(16), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String)
    reflection_id: Mapped[str] = mapped_column(String(32))
    facilitator_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    minutes: Mapped[int]
    step_index: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    step_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    remaining_seconds: Mapped[int | None]
    timer: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The chat it started in, kept when it moves (`chat_id`) to a thread: people
    # still act from there, and a thread Discord archived is no longer listed by it
    # (migration 0009). Last, as ADD COLUMN puts it.
    origin_chat_id: Mapped[str | None] = mapped_column(String)


class ReflectionParticipantRow(Base):
    """Who joined a session, without saying who in the clear (migration 0007).

    `member` is an HMAC of the person's platform and id under the deployment's member
    secret (storage.membership), so the store can find a person's rows (to answer,
    export and forget) but the table alone does not say whose they are. `sealed` holds
    the platform, user id and private chat ({"_enc": token} with a key, else plain)."""

    __tablename__ = "reflection_participants"

    session_id: Mapped[int] = mapped_column(
        ForeignKey("reflection_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    member: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    sealed: Mapped[dict[str, Any]] = mapped_column(JSON)
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReflectionAnswerRow(Base):
    """A participant's answer to one step. `text` is JSON so it can be sealed with
    the store's cipher like conversation variables: {"text": ...} or {"_enc": ...}.
    Whose it is is `member`, the same HMAC as the participant's (migration 0007).
    `session_id` becomes NULL when the session is purged; only saved answers are
    left then, and they keep which reflection and step they answered."""

    __tablename__ = "reflection_answers"
    __table_args__ = (
        UniqueConstraint("session_id", "member", "step_id"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("reflection_sessions.id", ondelete="SET NULL"), index=True
    )
    member: Mapped[str] = mapped_column(String(64), index=True)
    reflection_id: Mapped[str] = mapped_column(String(32))
    step_id: Mapped[str] = mapped_column(String(32))
    choice: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tally: Mapped[str | None] = mapped_column(String(16))
    shared: Mapped[bool] = mapped_column(default=False, server_default=false())
    saved: Mapped[bool] = mapped_column(default=False, server_default=false())
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeploymentSecretRow(Base):
    """Secrets this deployment made for itself on first start (migration 0007):
    "user_ref" (the HMAC key of the references in logs, unless configured) and
    "member" (the HMAC key of reflection membership). `value` is {"value": ...}, or
    {"_enc": token} when sealed with the store's cipher, and doubles as the start-up
    check that the configured keys open the stored data."""

    __tablename__ = "deployment_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PartnerLinkRow(Base):
    """A partner link from invitation to its end (dialogs.link.store.PartnerLink).

    Belongs to both people: forgetting either deletes it, and its signals with it.
    `code_hash` is the SHA-256 of the invitation code, kept only while the
    invitation is live (never the code itself)."""

    __tablename__ = "partner_links"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    inviter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    inviter_chat: Mapped[str] = mapped_column(String)
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    partner_chat: Mapped[str | None] = mapped_column(String)
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # "invited", "opened", "active" or "ended" (dialogs.link.store.LinkStatus).
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PartnerSignalRow(Base):
    """One signal through a link (dialogs.link.store.PartnerSignal): set words, never
    typed text. Deleted after the signal retention (30 days by default)."""

    __tablename__ = "partner_signals"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    link_id: Mapped[int] = mapped_column(
        ForeignKey("partner_links.id", ondelete="CASCADE"), index=True
    )
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    words: Mapped[str] = mapped_column(String(200))
    # "offered", "waiting", "sent", "declined" or "withdrawn".
    status: Mapped[str] = mapped_column(String(16))
    # The signal this one answers (a talk request, or the sender's own space signal).
    reply_to: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LeaseRow(Base):
    """A named lease one worker holds at a time (storage.leases): the Discord gateway
    of a shard. `token` grows by one whenever the lease changes hands, so a holder's
    token says which tenure something happened in. `holder` is None once released."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    token: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    acquired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SendBudgetRow(Base):
    """A platform's overall cap shared by every worker (storage.send_budget): the
    time, in seconds on the database's clock, from which its next capped message may
    go. Each message moves it on by its share of a second."""

    __tablename__ = "send_budgets"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    # Seconds since the epoch: double precision, for milliseconds at today's times.
    next_at: Mapped[float] = mapped_column(Double)


class InboxRow(Base):
    """A webhook update taken from the platform and not yet handled (migration 0012;
    bot.telegram.inbox). Written in one short transaction before the platform is
    answered, so an update in hand at a crash is not lost; handled in `update_id`
    order per person by whichever worker holds the person's claim; deleted as soon
    as it is handled. `body` is the update as the platform sent it (it may hold typed
    text), sealed with the store's cipher when a key is set."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("platform", "update_id"),
        # Serves "this person's rows, oldest first" (the claim).
        Index("ix_inbox_person", "platform", "person", "update_id"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    update_id: Mapped[int] = mapped_column(BigInteger)
    # The platform's user id of who sent it ("" for an update from nobody).
    person: Mapped[str] = mapped_column(String)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The worker handling the person's rows and until when; NULL: nobody.
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # How many times a worker took it: one that keeps killing its worker is dropped.
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
