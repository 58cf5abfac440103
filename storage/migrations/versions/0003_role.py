"""The person's usual first move under stress (the role self-check's result).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN, never a rebuild of `users` (see 0002 for why).
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.add_column(sa.Column("role", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.drop_column("role")
