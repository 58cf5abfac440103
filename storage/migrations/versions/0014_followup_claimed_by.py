"""Which worker holds a follow-up's claim: `followups.claimed_by`.

Set when a dispatcher claims a due follow-up (and when a DELIVERING row is taken
back), cleared when it goes back to PENDING. A live worker takes a dead worker's
claims back as soon as that worker's liveness lease lapses (storage/liveness.py),
and a stalled worker whose claim another has taken records nothing, even once the
other has claimed it again. Rows claimed before this revision have none, and keep
the time lease.

Revision ID: 0014
Revises: 0013
Create Date: 2027-02-08 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN, never a rebuild of the table (see 0002 for why).
    with op.batch_alter_table("followups", recreate="never") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("followups", recreate="never") as batch:
        batch.drop_column("claimed_by")
