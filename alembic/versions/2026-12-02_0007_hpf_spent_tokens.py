"""hpf_sessions: the payment token as a column, and when a payment attempt spent it

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("hpf_sessions", sa.Column("payment_token", sa.String(200), nullable=True))
    op.add_column("hpf_sessions", sa.Column("spent_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE hpf_sessions SET payment_token = payload->>'payment_token' "
        "WHERE payload->>'payment_token' IS NOT NULL"
    )
    op.create_index(
        op.f("ix_hpf_sessions_payment_token"), "hpf_sessions", ["payment_token"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_hpf_sessions_payment_token"), table_name="hpf_sessions")
    op.drop_column("hpf_sessions", "spent_at")
    op.drop_column("hpf_sessions", "payment_token")
