"""The partner link: `partner_links` (one row per link, from invitation to its end)
and `partner_signals` (each signal's set words, status and times).

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-20 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQLAlchemy types on purpose: a migration must not change meaning when
# storage.models or storage.columns is edited later.
_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "partner_links",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("inviter_id", sa.Integer(), nullable=False),
        sa.Column("inviter_chat", sa.String(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("partner_chat", sa.String(), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("accepted_at", _TIMESTAMP, nullable=True),
        sa.Column("ended_at", _TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["inviter_id"],
            ["users.id"],
            name=op.f("fk_partner_links_inviter_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["users.id"],
            name=op.f("fk_partner_links_partner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_links")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_partner_links_code_hash")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_partner_links_inviter_id"), "partner_links", ["inviter_id"], unique=False
    )
    op.create_index(
        op.f("ix_partner_links_partner_id"), "partner_links", ["partner_id"], unique=False
    )
    op.create_table(
        "partner_signals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("words", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reply_to", sa.Integer(), nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("due_at", _TIMESTAMP, nullable=True),
        sa.Column("sent_at", _TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["partner_links.id"],
            name=op.f("fk_partner_signals_link_id_partner_links"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["users.id"],
            name=op.f("fk_partner_signals_sender_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_signals")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_partner_signals_link_id"), "partner_signals", ["link_id"], unique=False
    )
    op.create_index(
        op.f("ix_partner_signals_sender_id"), "partner_signals", ["sender_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_partner_signals_sender_id"), table_name="partner_signals")
    op.drop_index(op.f("ix_partner_signals_link_id"), table_name="partner_signals")
    op.drop_table("partner_signals")
    op.drop_index(op.f("ix_partner_links_partner_id"), table_name="partner_links")
    op.drop_index(op.f("ix_partner_links_inviter_id"), table_name="partner_links")
    op.drop_table("partner_links")
