"""Data at rest: the deployment's secrets, sealed safety fields, membership by tag.

- `deployment_secrets`: secrets the deployment makes for itself (storage.membership).
- `users.sealed`: the crisis time and danger flag, sealed when a key is set.
- `reflection_participants` and `reflection_answers` name their person by `member`,
  an HMAC of "platform:user id" under the deployment's member secret, instead of a
  user id; a participant's platform, id and private chat move into `sealed`.

Existing rows are converted here: the member secret is made now if there are any
(stored plain: a migration knows no key; the next start with a key seals it, and
`pausecheck keys rotate` seals the participant rows), and their tags computed.

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-12 12:00:00
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQLAlchemy types on purpose: a migration must not change meaning when
# storage.models or storage.columns is edited later.
_TIMESTAMP = sa.DateTime(timezone=True)
_MEMBER = "member"


def _tag(secret: bytes, platform: str, user_id: str) -> str:
    return hmac.new(secret, f"{platform}:{user_id}".encode(), hashlib.sha256).hexdigest()


_users = sa.table(
    "users",
    sa.column("id", sa.Integer()),
    sa.column("platform", sa.String()),
    sa.column("platform_user_id", sa.String()),
)
_secrets = sa.table(
    "deployment_secrets",
    sa.column("name", sa.String()),
    sa.column("value", sa.JSON()),
    sa.column("created_at", _TIMESTAMP),
)


def _answer_columns(person: sa.Column[Any]) -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        person,
        sa.Column("reflection_id", sa.String(length=32), nullable=False),
        sa.Column("step_id", sa.String(length=32), nullable=False),
        sa.Column("choice", sa.String(length=32), nullable=True),
        sa.Column("text", sa.JSON(), nullable=True),
        sa.Column("tally", sa.String(length=16), nullable=True),
        sa.Column("shared", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("saved", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("at", _TIMESTAMP, nullable=False),
    ]


_ANSWER_FIELDS = (
    "id",
    "session_id",
    "reflection_id",
    "step_id",
    "choice",
    "text",
    "tally",
    "shared",
    "saved",
    "at",
)


def _old_answers() -> sa.TableClause:
    return sa.table(
        "reflection_answers",
        *(sa.column(c.name, c.type) for c in _answer_columns(sa.Column("user_id", sa.Integer()))),
    )


def _new_answers() -> sa.TableClause:
    return sa.table(
        "reflection_answers",
        *(sa.column(c.name, c.type) for c in _answer_columns(sa.Column("member", sa.String()))),
    )


def _member_secret(bind: sa.Connection, *, create: bool) -> bytes | None:
    row = bind.execute(sa.select(_secrets.c.value).where(_secrets.c.name == _MEMBER)).first()
    if row is not None:
        value = row[0]
        if isinstance(value, dict) and "value" in value:
            return base64.b64decode(value["value"])
        return None  # sealed with a key: a migration cannot open it
    if not create:
        return None
    secret = secrets.token_bytes(32)
    bind.execute(
        sa.insert(_secrets).values(
            name=_MEMBER,
            value={"value": base64.b64encode(secret).decode("ascii")},
            created_at=datetime.now(UTC),
        )
    )
    return secret


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "deployment_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_deployment_secrets")),
    )
    # ADD and DROP COLUMN, never a rebuild of `users` (see 0002 for why).
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.add_column(sa.Column("sealed", sa.JSON(), nullable=True))

    old_participants = sa.table(
        "reflection_participants",
        sa.column("session_id", sa.Integer()),
        sa.column("user_id", sa.Integer()),
        sa.column("chat_id", sa.String()),
        sa.column("joined_at", _TIMESTAMP),
    )
    # Offline (--sql), there are no rows to read: only the schema is rendered.
    offline = op.get_context().as_sql
    participants = (
        []
        if offline
        else bind.execute(
            sa.select(
                old_participants.c.session_id,
                _users.c.platform,
                _users.c.platform_user_id,
                old_participants.c.chat_id,
                old_participants.c.joined_at,
            ).join(_users, _users.c.id == old_participants.c.user_id)
        ).all()
    )
    old_answers = _old_answers()
    answers = (
        []
        if offline
        else bind.execute(
            sa.select(
                *(old_answers.c[name] for name in _ANSWER_FIELDS),
                _users.c.platform,
                _users.c.platform_user_id,
            ).join(_users, _users.c.id == old_answers.c.user_id)
        ).all()
    )
    secret = None if offline else _member_secret(bind, create=bool(participants or answers))

    op.drop_table("reflection_answers")
    op.drop_table("reflection_participants")
    op.create_table(
        "reflection_participants",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.JSON(), nullable=False),
        sa.Column("joined_at", _TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["reflection_sessions.id"],
            name=op.f("fk_reflection_participants_session_id_reflection_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "member", name=op.f("pk_reflection_participants")),
    )
    op.create_index(
        op.f("ix_reflection_participants_member"),
        "reflection_participants",
        ["member"],
        unique=False,
    )
    op.create_table(
        "reflection_answers",
        *_answer_columns(sa.Column("member", sa.String(length=64), nullable=False)),
        sa.UniqueConstraint(
            "session_id",
            "member",
            "step_id",
            name=op.f("uq_reflection_answers_session_id_member_step_id"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["reflection_sessions.id"],
            name=op.f("fk_reflection_answers_session_id_reflection_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reflection_answers")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_reflection_answers_session_id"), "reflection_answers", ["session_id"], unique=False
    )
    op.create_index(
        op.f("ix_reflection_answers_member"), "reflection_answers", ["member"], unique=False
    )
    if secret is None:
        return
    new_participants = sa.table(
        "reflection_participants",
        sa.column("session_id", sa.Integer()),
        sa.column("member", sa.String()),
        sa.column("sealed", sa.JSON()),
        sa.column("joined_at", _TIMESTAMP),
    )
    if participants:
        bind.execute(
            sa.insert(new_participants),
            [
                {
                    "session_id": session_id,
                    "member": _tag(secret, platform, user_id),
                    "sealed": {"platform": platform, "user_id": user_id, "chat_id": chat_id},
                    "joined_at": joined_at,
                }
                for session_id, platform, user_id, chat_id, joined_at in participants
            ],
        )
    if answers:
        bind.execute(
            sa.insert(_new_answers()),
            [
                {
                    **dict(zip(_ANSWER_FIELDS, row[: len(_ANSWER_FIELDS)], strict=True)),
                    "member": _tag(secret, row[-2], row[-1]),
                }
                for row in answers
            ],
        )


def downgrade() -> None:
    bind = op.get_bind()
    offline = op.get_context().as_sql
    secret = None if offline else _member_secret(bind, create=False)
    users = (
        []
        if offline
        else bind.execute(
            sa.select(_users.c.id, _users.c.platform, _users.c.platform_user_id)
        ).all()
    )
    by_tag = {} if secret is None else {_tag(secret, p, u): i for i, p, u in users}
    participants_now = sa.table(
        "reflection_participants",
        sa.column("session_id", sa.Integer()),
        sa.column("member", sa.String()),
        sa.column("sealed", sa.JSON()),
        sa.column("joined_at", _TIMESTAMP),
    )
    participants = [] if offline else bind.execute(sa.select(participants_now)).all()
    answers = [] if offline else bind.execute(sa.select(_new_answers())).mappings().all()
    op.drop_table("reflection_answers")
    op.drop_table("reflection_participants")
    op.create_table(
        "reflection_participants",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.String(), nullable=False),
        sa.Column("joined_at", _TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["reflection_sessions.id"],
            name=op.f("fk_reflection_participants_session_id_reflection_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_reflection_participants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "user_id", name=op.f("pk_reflection_participants")),
    )
    op.create_index(
        op.f("ix_reflection_participants_user_id"),
        "reflection_participants",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "reflection_answers",
        *_answer_columns(sa.Column("user_id", sa.Integer(), nullable=False)),
        sa.UniqueConstraint(
            "session_id",
            "user_id",
            "step_id",
            name=op.f("uq_reflection_answers_session_id_user_id_step_id"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["reflection_sessions.id"],
            name=op.f("fk_reflection_answers_session_id_reflection_sessions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_reflection_answers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reflection_answers")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_reflection_answers_session_id"), "reflection_answers", ["session_id"], unique=False
    )
    op.create_index(
        op.f("ix_reflection_answers_user_id"), "reflection_answers", ["user_id"], unique=False
    )
    # Rows sealed with a key, or whose person is gone, cannot be mapped back: dropped.
    old_participants = sa.table(
        "reflection_participants",
        sa.column("session_id", sa.Integer()),
        sa.column("user_id", sa.Integer()),
        sa.column("chat_id", sa.String()),
        sa.column("joined_at", _TIMESTAMP),
    )
    restored = [
        {
            "session_id": session_id,
            "user_id": by_tag[member],
            "chat_id": sealed["chat_id"],
            "joined_at": joined_at,
        }
        for session_id, member, sealed, joined_at in participants
        if member in by_tag and isinstance(sealed, dict) and "chat_id" in sealed
    ]
    if restored:
        bind.execute(sa.insert(old_participants), restored)
    restored_answers = [
        {**{k: row[k] for k in _ANSWER_FIELDS}, "user_id": by_tag[row["member"]]}
        for row in answers
        if row["member"] in by_tag
    ]
    if restored_answers:
        bind.execute(sa.insert(_old_answers()), restored_answers)
    op.drop_table("deployment_secrets")
    # ADD and DROP COLUMN, never a rebuild of `users` (see 0002 for why).
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.drop_column("sealed")
