"""Schedule and reachability fields on users; follow-up kinds and delivery messages.

`users.zone` replaces `users.timezone`, which nothing ever wrote (it only held its
default 'UTC'); a value someone set by hand is carried over in both directions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQLAlchemy types on purpose: a migration must not change meaning when
# storage.models or storage.columns is edited later.
_TIMESTAMP = sa.DateTime(timezone=True)

_USER_COLUMNS = (
    "zone",
    "quiet_start",
    "quiet_end",
    "checkin_cadence",
    "checkin_time",
    "checkin_weekday",
    "checkin_paused_until",
    "unreachable_at",
)


def upgrade() -> None:
    # ADD and DROP COLUMN, never a rebuild of `users` (see 0002 for why).
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.add_column(sa.Column("zone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("quiet_start", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("quiet_end", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("checkin_cadence", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("checkin_time", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("checkin_weekday", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("checkin_paused_until", _TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("unreachable_at", _TIMESTAMP, nullable=True))
    # 'UTC' is the column default, not something the person said: zone stays None.
    op.execute("UPDATE users SET zone = timezone WHERE timezone <> 'UTC'")
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.drop_column("timezone")

    # ADD COLUMN here too: nothing references followups, but there is no need to copy it.
    with op.batch_alter_table("followups", recreate="never") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), server_default="once", nullable=False)
        )
        batch.add_column(sa.Column("messages", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("followups", recreate="never") as batch:
        batch.drop_column("messages")
        batch.drop_column("kind")

    with op.batch_alter_table("users", recreate="never") as batch:
        batch.add_column(sa.Column("timezone", sa.String(), server_default="UTC", nullable=False))
    op.execute("UPDATE users SET timezone = zone WHERE zone IS NOT NULL")
    with op.batch_alter_table("users", recreate="never") as batch:
        for column in reversed(_USER_COLUMNS):
            batch.drop_column(column)
