"""The transactional outbox: every message the guide owes someone is a row.

`outbound` holds one rendered message per row, written in the same transaction as
the turn or follow-up that said it, with its per-chat sequence and what became of it;
`outbound_chats` hands out that sequence. Follow-ups no longer keep their messages on
the row while delivering (`followups.messages` stays, for rows written before this
revision, which the dispatcher moves into the outbox).

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-10 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQLAlchemy types on purpose: a migration must not change meaning when
# storage.models or storage.columns is edited later.
_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbound",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("message", sa.JSON(), nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("claimed_at", _TIMESTAMP, nullable=False),
        sa.Column("claimed_by", sa.String(length=32), nullable=False),
        sa.Column("sent_at", _TIMESTAMP, nullable=True),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_outbound_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbound_chat", "outbound", ["platform", "chat_id", "seq"], unique=False)
    op.create_index(
        "ix_outbound_status_claimed_at", "outbound", ["status", "claimed_at"], unique=False
    )
    op.create_index(op.f("ix_outbound_user_id"), "outbound", ["user_id"], unique=False)
    op.create_table(
        "outbound_chats",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "chat_id", name=op.f("pk_outbound_chats")),
    )


def downgrade() -> None:
    op.drop_table("outbound_chats")
    op.drop_index(op.f("ix_outbound_user_id"), table_name="outbound")
    op.drop_index("ix_outbound_status_claimed_at", table_name="outbound")
    op.drop_index("ix_outbound_chat", table_name="outbound")
    op.drop_table("outbound")
