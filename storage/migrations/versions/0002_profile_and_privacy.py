"""Profile columns on users, processed events linked to users, anonymous referral counts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-02 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQLAlchemy types on purpose: a migration must not change meaning when
# storage.models or storage.columns is edited later.
_TIMESTAMP = sa.DateTime(timezone=True)


def _processed_events_0001() -> sa.Table:
    # Given to batch mode instead of reflecting the table, so that offline (--sql)
    # runs, which cannot reflect, produce the same statements as online ones.
    return sa.Table(
        "processed_events",
        sa.MetaData(),
        sa.Column("event_key", sa.String(), nullable=False),
        sa.Column("processed_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("event_key", name="pk_processed_events"),
        sa.Index("ix_processed_events_processed_at", "processed_at"),
    )


def upgrade() -> None:
    # Never recreate `users` on SQLite: with foreign keys on (and they cannot be
    # turned off inside the migration's transaction), dropping the old table
    # deletes every conversation, journal entry and follow-up by cascade. Plain
    # ADD COLUMN keeps the rows, which is also why these columns come last in models.
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.add_column(sa.Column("consent_at", _TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("adult", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("country", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("crisis_at", _TIMESTAMP, nullable=True))
        batch.add_column(
            sa.Column("unsafe", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(
            sa.Column("screened", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("session_started_at", _TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("last_active_at", _TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("reminded_at", _TIMESTAMP, nullable=True))

    # Recreating processed_events is safe: no table references it.
    with op.batch_alter_table("processed_events", copy_from=_processed_events_0001()) as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_processed_events_user_id_users"),
            "users",
            ["user_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_processed_events_user_id"), ["user_id"])

    op.create_table(
        "referrals",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("country", sa.String(length=16), nullable=False),
        sa.Column("signal", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "country", "signal", name=op.f("pk_referrals")),
    )


def downgrade() -> None:
    op.drop_table("referrals")

    with op.batch_alter_table("processed_events", copy_from=_processed_events_0002()) as batch:
        batch.drop_index(op.f("ix_processed_events_user_id"))
        batch.drop_constraint(op.f("fk_processed_events_user_id_users"), type_="foreignkey")
        batch.drop_column("user_id")

    # DROP COLUMN (SQLite 3.35+) rather than a recreate, for the reason given above.
    with op.batch_alter_table("users", recreate="never") as batch:
        for column in (
            "reminded_at",
            "last_active_at",
            "session_started_at",
            "screened",
            "unsafe",
            "crisis_at",
            "country",
            "adult",
            "consent_at",
        ):
            batch.drop_column(column)


def _processed_events_0002() -> sa.Table:
    table = _processed_events_0001()
    table.append_column(sa.Column("user_id", sa.Integer(), nullable=True))
    table.append_constraint(
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_processed_events_user_id_users",
            ondelete="CASCADE",
        )
    )
    sa.Index("ix_processed_events_user_id", table.c.user_id)
    return table
