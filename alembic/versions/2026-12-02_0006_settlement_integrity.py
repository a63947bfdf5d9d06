"""settlement integrity: each approved transaction once, extra charges, exhausted events

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = (
    "received",
    "processed",
    "ignored",
    "failed",
    "pending_match",
    "unmatched",
    "rejected",
)
_STATUS_CHECK = "ck_webhook_events_webhook_event_status"
_OPERATIONS = "'sale', 'authorize', 'capture', 'refund', 'cancel'"
_EXTRA_STATUSES = "'open', 'reversing', 'reversed', 'reverse_failed'"


def _status_check(statuses: Sequence[str]) -> None:
    op.drop_constraint(op.f(_STATUS_CHECK), "webhook_events", type_="check")
    listed = ", ".join(f"'{status}'" for status in statuses)
    op.create_check_constraint(op.f(_STATUS_CHECK), "webhook_events", f"status IN ({listed})")


def upgrade() -> None:
    op.add_column(
        "payments",
        sa.Column("extra_charged_minor", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_payments_extra_charged_not_negative"), "payments", "extra_charged_minor >= 0"
    )
    op.create_index(
        "uq_payment_attempts_approved_transaction",
        "payment_attempts",
        ["transaction_id"],
        unique=True,
        postgresql_where=sa.text("outcome = 'approved' AND transaction_id IS NOT NULL"),
    )
    op.create_table(
        "extra_charges",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("payment_id", sa.UUID(), nullable=False),
        sa.Column("attempt_id", sa.UUID(), nullable=True),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("operation", sa.String(length=24), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=24), server_default="open", nullable=False),
        sa.Column("reversed_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reversal_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("reverse_tries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            f"operation IN ({_OPERATIONS})", name=op.f("ck_extra_charges_extra_charge_operation")
        ),
        sa.CheckConstraint(
            f"status IN ({_EXTRA_STATUSES})", name=op.f("ck_extra_charges_extra_charge_status")
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["payment_attempts.id"],
            name=op.f("fk_extra_charges_attempt_id_payment_attempts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_extra_charges_payment_id_payments"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_extra_charges")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_extra_charges_transaction_id")),
    )
    op.create_index(op.f("ix_extra_charges_payment_id"), "extra_charges", ["payment_id"])
    op.create_index(op.f("ix_extra_charges_status"), "extra_charges", ["status"])
    _status_check((*_STATUSES, "exhausted"))


def downgrade() -> None:
    op.execute("UPDATE webhook_events SET status = 'failed' WHERE status = 'exhausted'")
    _status_check(_STATUSES)
    op.drop_index(op.f("ix_extra_charges_status"), table_name="extra_charges")
    op.drop_index(op.f("ix_extra_charges_payment_id"), table_name="extra_charges")
    op.drop_table("extra_charges")
    op.drop_index("uq_payment_attempts_approved_transaction", table_name="payment_attempts")
    op.drop_constraint(op.f("ck_payments_extra_charged_not_negative"), "payments", type_="check")
    op.drop_column("payments", "extra_charged_minor")
