"""The local ledger: one payment per Medusa payment session.

Amounts are integer minor units. The database itself enforces the money invariants (captured never
above authorized, refunded never above captured), so no code path can break them.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, string_enum


class PaymentState(StrEnum):
    REQUIRES_PAYMENT = "requires_payment"  # nothing charged yet; a declined attempt lands here
    PENDING = "pending"  # NetValve said pending, or the outcome is unknown: being settled
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELED = "canceled"


class Operation(StrEnum):
    SALE = "sale"
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    REFUND = "refund"
    CANCEL = "cancel"


class Payment(TimestampMixin, Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(
            "authorized_minor >= 0 AND captured_minor >= 0 AND refunded_minor >= 0",
            name="amounts_not_negative",
        ),
        CheckConstraint("authorized_minor <= amount_minor", name="authorized_within_amount"),
        CheckConstraint("captured_minor <= authorized_minor", name="captured_within_authorized"),
        CheckConstraint("refunded_minor <= captured_minor", name="refunded_within_captured"),
        CheckConstraint(
            "charged_back_minor >= 0 AND charged_back_minor <= captured_minor",
            name="charged_back_within_captured",
        ),
        CheckConstraint("extra_charged_minor >= 0", name="extra_charged_not_negative"),
        Index(
            "ix_payments_reconcile",
            "next_reconcile_at",
            postgresql_where=text("in_flight IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    payment_session_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    payment_collection_id: Mapped[str | None] = mapped_column(String(64))
    cart_id: Mapped[str | None] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    medusa_amount: Mapped[Any] = mapped_column(Numeric, nullable=False)
    """Medusa's unrounded raw amount (e.g. 98.9009); `amount_minor` is it rounded half-up."""
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    state: Mapped[PaymentState] = mapped_column(
        string_enum(PaymentState, "payment_state"),
        nullable=False,
        server_default=PaymentState.REQUIRES_PAYMENT.value,
    )
    in_flight: Mapped[Operation | None] = mapped_column(string_enum(Operation, "payment_operation"))
    """The gateway operation under way or unresolved; while set, no other operation may start."""
    in_flight_attempt_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    attempts_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    transaction_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    """The approved sale or authorization."""
    settled_transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    """What refunds name: the sale itself, or the capture of an authorization."""
    authorized_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    captured_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    refunded_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    card_number: Mapped[str | None] = mapped_column(String(32))
    """Masked by NetValve (first six, last four); the full number never reaches this service."""
    card_type: Mapped[str | None] = mapped_column(String(32))
    response_code: Mapped[str | None] = mapped_column(String(32))
    response_message: Mapped[str | None] = mapped_column(Text)
    decline_type: Mapped[str | None] = mapped_column(String(16))
    charged_back_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    """Disputed by the cardholder's bank (a CHARGEBACK webhook); refunds are unaffected."""
    charged_back_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    extra_charged_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    """Approved at NetValve beyond the payment's own charge (a late or duplicate sale) and not
    reversed yet: money the shopper paid that Medusa does not show. See `ExtraCharge`."""
    next_reconcile_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reconcile_tries: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
