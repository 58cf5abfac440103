"""What an outbox row was rendered against, and a chat's pending rows found directly.

`outbound.turn` is the person's conversation turn when the row was written (for rows
to the person's own chat from their turn or follow-up), `outbound.followup_id` the
follow-up that said it: a row sent again after a crash or a failure is recorded
superseded instead when the person's conversation has moved on since. Rows written
before this revision have neither and are sent as before.

`ix_outbound_chat` becomes (platform, chat_id, status, seq): a turn asks, on its hot
path, whether anything is still pending before its rows in their chat, and that
should not walk every row the chat was ever sent.

Revision ID: 0013
Revises: 0012
Create Date: 2027-02-01 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN, never a rebuild of the table (see 0002 for why).
    with op.batch_alter_table("outbound", recreate="never") as batch:
        batch.add_column(sa.Column("turn", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("followup_id", sa.Integer(), nullable=True))
    op.drop_index("ix_outbound_chat", table_name="outbound")
    op.create_index(
        "ix_outbound_chat", "outbound", ["platform", "chat_id", "status", "seq"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_chat", table_name="outbound")
    op.create_index("ix_outbound_chat", "outbound", ["platform", "chat_id", "seq"], unique=False)
    with op.batch_alter_table("outbound", recreate="never") as batch:
        batch.drop_column("followup_id")
        batch.drop_column("turn")
