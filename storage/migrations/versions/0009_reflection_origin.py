"""The chat a group reflection started in, kept when it moves to a thread.

On Discord a reflection moves from the channel where it was started to a thread
opened from its first post, but people still act from the channel (`/reflect end`).
The adapter used to find the thread among the channel's active threads, which
misses one Discord has archived; the session now keeps where it started.
Existing sessions started where they are, as far as anyone can tell now.

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-20 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN, never a rebuild of the table (see 0002 for why).
    with op.batch_alter_table("reflection_sessions", recreate="never") as batch:
        batch.add_column(sa.Column("origin_chat_id", sa.String(), nullable=True))
    op.execute("UPDATE reflection_sessions SET origin_chat_id = chat_id")
    op.create_index(
        "ix_reflection_sessions_origin",
        "reflection_sessions",
        ["platform", "origin_chat_id", "status"],
    )


def downgrade() -> None:
    op.drop_index("ix_reflection_sessions_origin", table_name="reflection_sessions")
    with op.batch_alter_table("reflection_sessions", recreate="never") as batch:
        batch.drop_column("origin_chat_id")
