"""The webhook inbox: an update is stored before the platform is answered.

In webhook mode the guide used to answer Telegram as soon as an update was queued in
memory, so an update in hand at a crash was lost; and with several workers behind a
load balancer nothing kept one person's updates in order. `inbox` holds each update
from its arrival until it is handled (then it is deleted), claimed per person by one
worker at a time under a lease (bot.telegram.inbox). `users.last_update_id` is the
newest update handled for the person, so an older one arriving late is known.

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-25 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQLAlchemy types on purpose: a migration must not change meaning when
# storage.models or storage.columns is edited later.
_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("person", sa.String(), nullable=False),
        sa.Column("received_at", _TIMESTAMP, nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("lease_until", _TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint("platform", "update_id", name=op.f("uq_inbox_platform_update_id")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_inbox_person", "inbox", ["platform", "person", "update_id"], unique=False)
    # ADD COLUMN, never a rebuild of the table (see 0002 for why).
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.add_column(sa.Column("last_update_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.drop_column("last_update_id")
    op.drop_index("ix_inbox_person", table_name="inbox")
    op.drop_table("inbox")
