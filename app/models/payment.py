"""The local ledger: one payment per Medusa payment session, and every gateway attempt on it.

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
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin


def _enum(kind: type[StrEnum], name: str) -> Enum:
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda members: [member.value for member in members],
    )


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


class AttemptOutcome(StrEnum):
    SENT = "sent"  # recorded before the call; replaced once the answer is known
    APPROVED = "approved"
    PENDING = "pending"
    DECLINED = "declined"
    VALIDATION_FAILED = "validation_failed"
    AUTHENTICATION_FAILED = "authentication_failed"
    UNKNOWN = "unknown"
    UNAVAILABLE = "unavailable"


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
        _enum(PaymentState, "payment_state"),
        nullable=False,
        server_default=PaymentState.REQUIRES_PAYMENT.value,
    )
    in_flight: Mapped[Operation | None] = mapped_column(_enum(Operation, "payment_operation"))
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


class PaymentAttempt(Base):
    """One call to NetValve for a payment, recorded before it is sent; or a transaction NetValve
    made for the payment that the ledger learnt of later (`reason` says how)."""

    __tablename__ = "payment_attempts"
    __table_args__ = (
        # Each approved NetValve transaction is in the ledger at most once, however many
        # answers, redeliveries, re-traced copies or operator replays name it.
        Index(
            "uq_payment_attempts_approved_transaction",
            "transaction_id",
            unique=True,
            postgresql_where=text("outcome = 'approved' AND transaction_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payments.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    operation: Mapped[Operation] = mapped_column(
        _enum(Operation, "attempt_operation"), nullable=False
    )
    client_order_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    final_capture: Mapped[bool | None] = mapped_column()
    outcome: Mapped[AttemptOutcome] = mapped_column(
        _enum(AttemptOutcome, "attempt_outcome"),
        nullable=False,
        server_default=AttemptOutcome.SENT.value,
    )
    http_status: Mapped[int | None] = mapped_column(Integer)
    response_code: Mapped[str | None] = mapped_column(String(32))
    response_message: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(64))
    transaction_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    elapsed_ms: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Digest of the (API key, Idempotency-Key) that started this attempt: a retry of the same
    # request is recognised even after its key was released (202 answers are not stored).
    request_key: Mapped[str | None] = mapped_column(String(64))


class IdempotencyKey(Base):
    """A client's Idempotency-Key and the response it got, scoped to the API key that sent it."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("uq_idempotency_keys_scope_key", "scope", "key", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    scope: Mapped[str] = mapped_column(String(64), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )


class HpfSession(Base):
    """A hosted-payment-fields session handed to the storefront, reused until it expires or a
    payment attempt spends its token."""

    __tablename__ = "hpf_sessions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    payment_session_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    payment_token: Mapped[str | None] = mapped_column(String(200), index=True)
    """NetValve's HPF token handed out with this session (None for script-only sources)."""
    spent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When a payment attempt sent `payment_token` to NetValve: from then on the session is never
    reused, whatever the attempt's outcome (NetValve spends a token on any processed payment)."""
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
