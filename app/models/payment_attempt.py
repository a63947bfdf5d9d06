"""Every gateway attempt on a payment, and every NetValve transaction the ledger holds for it."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, string_enum
from app.models.payment import Operation


class AttemptOutcome(StrEnum):
    SENT = "sent"  # recorded before the call; replaced once the answer is known
    APPROVED = "approved"
    PENDING = "pending"
    DECLINED = "declined"
    VALIDATION_FAILED = "validation_failed"
    AUTHENTICATION_FAILED = "authentication_failed"
    UNKNOWN = "unknown"
    UNAVAILABLE = "unavailable"


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
        string_enum(Operation, "attempt_operation"), nullable=False
    )
    client_order_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    final_capture: Mapped[bool | None] = mapped_column()
    outcome: Mapped[AttemptOutcome] = mapped_column(
        string_enum(AttemptOutcome, "attempt_outcome"),
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
