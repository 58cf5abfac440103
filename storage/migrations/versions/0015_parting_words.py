"""Outbox rows that belong to nobody: `outbound.user_id` may be NULL.

/forget's last words ("Done. Everything I kept about you is deleted...") are written
in the transaction that deletes the person, so they can no longer be the person's:
they are stored with no owner, addressed only by chat, and deleted as soon as their
send is settled (storage.outbound_rows.delete_settled_parting). Stored, a kill -9
between /forget's commit and its send no longer loses them: any worker's resend
sweep sends them, as it does every other row.

Revision ID: 0015
Revises: 0014
Create Date: 2027-02-15 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite cannot drop a NOT NULL in place, so the table is rebuilt there. Unlike
    # `users` (see 0002), nothing references `outbound`: dropping the old copy
    # cascades to nothing. PostgreSQL alters the column in place.
    _rebuild(nullable=True)


def downgrade() -> None:
    # Rows with no owner are settled within seconds of being written; any left
    # cannot be given one, so they go.
    op.execute("DELETE FROM outbound WHERE user_id IS NULL")
    _rebuild(nullable=False)


def _rebuild(*, nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # The rebuilt table keeps AUTOINCREMENT, and the ids it has given out: the
        # copy would restart the sequence at the highest id still there, and ids of
        # deleted rows would be given again. Kept in SQL, not read into Python, so
        # that `alembic upgrade --sql` renders it too.
        op.execute(
            "CREATE TEMP TABLE outbound_last_id AS"
            " SELECT seq FROM sqlite_sequence WHERE name = 'outbound'"
        )
    # The table as 0006 and 0013 left it, so that batch mode need not reflect it
    # (`alembic upgrade --sql` has no database to reflect).
    with op.batch_alter_table("outbound", copy_from=_outbound(not nullable)) as batch:
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=nullable)
    if sqlite:
        op.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM outbound_last_id))"
            " WHERE name = 'outbound' AND EXISTS (SELECT 1 FROM outbound_last_id)"
        )
        op.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'outbound', seq"
            " FROM outbound_last_id"
            " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'outbound')"
        )
        op.execute("DROP TABLE outbound_last_id")


def _outbound(owner_required: bool) -> sa.Table:
    stamp = sa.DateTime(timezone=True)
    return sa.Table(
        "outbound",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=not owner_required),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("message", sa.JSON(), nullable=True),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("claimed_at", stamp, nullable=False),
        sa.Column("claimed_by", sa.String(length=32), nullable=False),
        sa.Column("sent_at", stamp, nullable=True),
        sa.Column("updated_at", stamp, nullable=False),
        sa.Column("turn", sa.Integer(), nullable=True),
        sa.Column("followup_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_outbound_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbound"),
        sa.Index("ix_outbound_chat", "platform", "chat_id", "status", "seq"),
        sa.Index("ix_outbound_status_claimed_at", "status", "claimed_at"),
        sa.Index("ix_outbound_user_id", "user_id"),
        sqlite_autoincrement=True,
    )
