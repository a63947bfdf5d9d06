"""medusa_notifications: the outbox of notifications to Medusa

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 16:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENT_TYPES = (
    "'payment.authorized', 'payment.captured', 'payment.failed', 'payment.canceled', "
    "'payment.refunded'"
)
_STATUSES = "'pending', 'delivered', 'failed'"


def upgrade() -> None:
    op.create_table(
        "medusa_notifications",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("payment_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(length=24), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=24), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            f"event_type IN ({_EVENT_TYPES})",
            name=op.f("ck_medusa_notifications_medusa_event_type"),
        ),
        sa.CheckConstraint(
            f"status IN ({_STATUSES})",
            name=op.f("ck_medusa_notifications_medusa_notification_status"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_medusa_notifications_payment_id_payments"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medusa_notifications")),
    )
    op.create_index(
        op.f("ix_medusa_notifications_payment_id"), "medusa_notifications", ["payment_id"]
    )
    op.create_index(
        "ix_medusa_notifications_due",
        "medusa_notifications",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_medusa_notifications_status_created_at",
        "medusa_notifications",
        ["status", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_medusa_notifications_status_created_at", table_name="medusa_notifications")
    op.drop_index("ix_medusa_notifications_due", table_name="medusa_notifications")
    op.drop_index(op.f("ix_medusa_notifications_payment_id"), table_name="medusa_notifications")
    op.drop_table("medusa_notifications")
