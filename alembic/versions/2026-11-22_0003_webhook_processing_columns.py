"""webhook_events: retry time, matched payment, operator notes, soft delete

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:15:20.910391+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_events", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("webhook_events", sa.Column("payment_id", sa.UUID(), nullable=True))
    op.add_column("webhook_events", sa.Column("notes", sa.Text(), nullable=True))
    op.add_column(
        "webhook_events", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_webhook_events_due", "webhook_events", ["status", "next_attempt_at"], unique=False
    )
    op.create_index(
        op.f("ix_webhook_events_payment_id"), "webhook_events", ["payment_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_events_payment_id"), table_name="webhook_events")
    op.drop_index("ix_webhook_events_due", table_name="webhook_events")
    op.drop_column("webhook_events", "deleted_at")
    op.drop_column("webhook_events", "notes")
    op.drop_column("webhook_events", "payment_id")
    op.drop_column("webhook_events", "next_attempt_at")
