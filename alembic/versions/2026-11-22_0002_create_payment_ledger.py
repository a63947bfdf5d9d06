"""create the payment ledger: payments, attempts, idempotency keys, HPF sessions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:54:18.004006+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hpf_sessions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("payment_session_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hpf_sessions")),
    )
    op.create_index(
        op.f("ix_hpf_sessions_payment_session_id"),
        "hpf_sessions",
        ["payment_session_id"],
        unique=False,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"], unique=False
    )
    op.create_index(
        "uq_idempotency_keys_scope_key", "idempotency_keys", ["scope", "key"], unique=True
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("payment_session_id", sa.String(length=64), nullable=False),
        sa.Column("payment_collection_id", sa.String(length=64), nullable=True),
        sa.Column("cart_id", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("medusa_amount", sa.Numeric(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "requires_payment",
                "pending",
                "authorized",
                "captured",
                "partially_refunded",
                "refunded",
                "canceled",
                name="payment_state",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            server_default="requires_payment",
            nullable=False,
        ),
        sa.Column(
            "in_flight",
            sa.Enum(
                "sale",
                "authorize",
                "capture",
                "refund",
                "cancel",
                name="payment_operation",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.Column("in_flight_attempt_id", sa.UUID(), nullable=True),
        sa.Column("attempts_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("settled_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("authorized_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("captured_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("card_number", sa.String(length=32), nullable=True),
        sa.Column("card_type", sa.String(length=32), nullable=True),
        sa.Column("response_code", sa.String(length=32), nullable=True),
        sa.Column("response_message", sa.Text(), nullable=True),
        sa.Column("decline_type", sa.String(length=16), nullable=True),
        sa.Column("next_reconcile_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reconcile_tries", sa.Integer(), server_default="0", nullable=False),
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
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "authorized_minor <= amount_minor", name=op.f("ck_payments_authorized_within_amount")
        ),
        sa.CheckConstraint(
            "authorized_minor >= 0 AND captured_minor >= 0 AND refunded_minor >= 0",
            name=op.f("ck_payments_amounts_not_negative"),
        ),
        sa.CheckConstraint(
            "captured_minor <= authorized_minor",
            name=op.f("ck_payments_captured_within_authorized"),
        ),
        sa.CheckConstraint(
            "refunded_minor <= captured_minor", name=op.f("ck_payments_refunded_within_captured")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("payment_session_id", name=op.f("uq_payments_payment_session_id")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_payments_transaction_id")),
    )
    op.create_index(op.f("ix_payments_cart_id"), "payments", ["cart_id"], unique=False)
    op.create_index(
        "ix_payments_reconcile",
        "payments",
        ["next_reconcile_at"],
        unique=False,
        postgresql_where=sa.text("in_flight IS NOT NULL"),
    )
    op.create_table(
        "payment_attempts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("payment_id", sa.UUID(), nullable=False),
        sa.Column(
            "operation",
            sa.Enum(
                "sale",
                "authorize",
                "capture",
                "refund",
                "cancel",
                name="attempt_operation",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("client_order_id", sa.String(length=100), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("final_capture", sa.Boolean(), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "sent",
                "approved",
                "pending",
                "declined",
                "validation_failed",
                "authentication_failed",
                "unknown",
                "unavailable",
                name="attempt_outcome",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            server_default="sent",
            nullable=False,
        ),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("response_code", sa.String(length=32), nullable=True),
        sa.Column("response_message", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("elapsed_ms", sa.Double(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_payment_attempts_payment_id_payments"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_attempts")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_payment_attempts_client_order_id")),
    )
    op.create_index(
        op.f("ix_payment_attempts_payment_id"), "payment_attempts", ["payment_id"], unique=False
    )
    op.create_index(
        op.f("ix_payment_attempts_transaction_id"),
        "payment_attempts",
        ["transaction_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_attempts_transaction_id"), table_name="payment_attempts")
    op.drop_index(op.f("ix_payment_attempts_payment_id"), table_name="payment_attempts")
    op.drop_table("payment_attempts")
    op.drop_index(
        "ix_payments_reconcile",
        table_name="payments",
        postgresql_where=sa.text("in_flight IS NOT NULL"),
    )
    op.drop_index(op.f("ix_payments_cart_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_index("uq_idempotency_keys_scope_key", table_name="idempotency_keys")
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index(op.f("ix_hpf_sessions_payment_session_id"), table_name="hpf_sessions")
    op.drop_table("hpf_sessions")
