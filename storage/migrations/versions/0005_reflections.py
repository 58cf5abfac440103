"""Group reflections: sessions, participants and answers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQLAlchemy types on purpose: a migration must not change meaning when
# storage.models or storage.columns is edited later.
_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reflection_sessions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(), nullable=False),
        sa.Column("reflection_id", sa.String(length=32), nullable=False),
        sa.Column("facilitator_id", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step_due_at", _TIMESTAMP, nullable=True),
        sa.Column("remaining_seconds", sa.Integer(), nullable=True),
        sa.Column("timer", sa.String(), nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("ended_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reflection_sessions")),
        sa.UniqueConstraint("token", name=op.f("uq_reflection_sessions_token")),
        sa.ForeignKeyConstraint(
            ["facilitator_id"],
            ["users.id"],
            name=op.f("fk_reflection_sessions_facilitator_id_users"),
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_reflection_sessions_chat",
        "reflection_sessions",
        ["platform", "chat_id", "status"],
        unique=False,
    )
    op.create_index(
        op.f("ix_reflection_sessions_facilitator_id"),
        "reflection_sessions",
        ["facilitator_id"],
        unique=False,
    )
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
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("reflection_id", sa.String(length=32), nullable=False),
        sa.Column("step_id", sa.String(length=32), nullable=False),
        sa.Column("choice", sa.String(length=32), nullable=True),
        sa.Column("text", sa.JSON(), nullable=True),
        sa.Column("tally", sa.String(length=16), nullable=True),
        sa.Column("shared", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("saved", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("at", _TIMESTAMP, nullable=False),
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


def downgrade() -> None:
    op.drop_table("reflection_answers")
    op.drop_table("reflection_participants")
    op.drop_index("ix_reflection_sessions_chat", table_name="reflection_sessions")
    op.drop_table("reflection_sessions")
