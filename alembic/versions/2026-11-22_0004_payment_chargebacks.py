"""payments: chargeback amount and time, from CHARGEBACK webhooks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:46:50.932418+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "payments",
        sa.Column("charged_back_minor", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "payments", sa.Column("charged_back_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_check_constraint(
        op.f("ck_payments_charged_back_within_captured"),
        "payments",
        "charged_back_minor >= 0 AND charged_back_minor <= captured_minor",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_payments_charged_back_within_captured"), "payments", type_="check"
    )
    op.drop_column("payments", "charged_back_at")
    op.drop_column("payments", "charged_back_minor")
