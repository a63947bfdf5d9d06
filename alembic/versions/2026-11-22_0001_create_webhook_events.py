"""create webhook_events: the inbox of NetValve webhooks

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:12:38.550265+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("source", sa.String(length=32), server_default="netvalve", nullable=False),
        sa.Column("dedup_key", sa.String(length=128), nullable=False),
        sa.Column("event_name", sa.String(length=64), nullable=True),
        sa.Column("transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("client_order_id", sa.String(length=100), nullable=True),
        sa.Column("raw_body", sa.LargeBinary(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "processed",
                "ignored",
                "failed",
                "pending_match",
                "unmatched",
                "rejected",
                name="webhook_event_status",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            server_default="received",
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("source", "dedup_key", name=op.f("uq_webhook_events_source_dedup_key")),
    )
    op.create_index(
        op.f("ix_webhook_events_client_order_id"),
        "webhook_events",
        ["client_order_id"],
        unique=False,
    )
    op.create_index(
        "ix_webhook_events_status_received_at",
        "webhook_events",
        ["status", "received_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_webhook_events_transaction_id"), "webhook_events", ["transaction_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_events_transaction_id"), table_name="webhook_events")
    op.drop_index("ix_webhook_events_status_received_at", table_name="webhook_events")
    op.drop_index(op.f("ix_webhook_events_client_order_id"), table_name="webhook_events")
    op.drop_table("webhook_events")
