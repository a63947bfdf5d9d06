"""Money NetValve holds for a payment beyond the payment's own charge.

A sale or authorization approved at NetValve that is not the payment's recorded charge: the late
answer of an attempt the ledger had given up on (processed after the not-found grace), or a
second approval after a retry. The ledger never hides it: it is recorded here and on the payment
(`extra_charged_minor`), shown by `/status`, counted in metrics and listed for operators, and it
is reversed (void or full refund) automatically when `NETVALVE_REVERSE_EXTRA_CHARGES` asks for it,
or by an operator through the API.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, string_enum
from app.models.payment import Operation


class ExtraChargeStatus(StrEnum):
    OPEN = "open"  # money held: nobody has reversed it yet
    REVERSING = "reversing"  # a void or refund is on its way to NetValve
    REVERSED = "reversed"  # voided, fully refunded or charged back at NetValve
    REVERSE_FAILED = "reverse_failed"  # NetValve refused, or its answer was lost: retry is safe


class ExtraCharge(TimestampMixin, Base):
    __tablename__ = "extra_charges"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payments.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    attempt_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_attempts.id", ondelete="RESTRICT")
    )
    transaction_id: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    operation: Mapped[Operation] = mapped_column(
        string_enum(Operation, "extra_charge_operation"),
        nullable=False,
    )
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[ExtraChargeStatus] = mapped_column(
        string_enum(ExtraChargeStatus, "extra_charge_status"),
        nullable=False,
        server_default=ExtraChargeStatus.OPEN.value,
        index=True,
    )
    reversed_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    """Given back so far (refunds of a sale can come in parts); reversed once it is all."""
    reversal_transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    reverse_tries: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    detail: Mapped[str | None] = mapped_column(Text)
    """How it was found, and the last reversal's outcome."""
    reversed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
