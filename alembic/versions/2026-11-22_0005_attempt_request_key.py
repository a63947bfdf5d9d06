"""payment_attempts: the request key that started each attempt

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 07:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payment_attempts", sa.Column("request_key", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("payment_attempts", "request_key")
