"""The outbox of notifications to Medusa: one row per ledger change Medusa did not ask for.

A row is written in the transaction of the ledger change it reports, so it exists exactly when
the change does; the delivery worker sees it only once that transaction has committed.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, string_enum


class MedusaNotificationStatus(StrEnum):
    PENDING = "pending"  # to be sent, now or after its backoff
    DELIVERED = "delivered"  # Medusa answered 2xx
    FAILED = "failed"  # every attempt failed: terminal until an operator replays it


class MedusaEventType(StrEnum):
    AUTHORIZED = "payment.authorized"
    CAPTURED = "payment.captured"
    FAILED = "payment.failed"
    CANCELED = "payment.canceled"
    REFUNDED = "payment.refunded"


class MedusaNotification(TimestampMixin, Base):
    __tablename__ = "medusa_notifications"
    __table_args__ = (
        # The worker's claim: due rows only, oldest due first.
        Index(
            "ix_medusa_notifications_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # The operator's list: by status, newest first.
        Index("ix_medusa_notifications_status_created_at", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    """Also the Standard Webhooks message id (`msg_<hex>`), the same on every attempt."""
    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payments.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    event_type: Mapped[MedusaEventType] = mapped_column(
        string_enum(MedusaEventType, "medusa_event_type"), nullable=False
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    """The body sent to Medusa, as the ledger stood when the row was written."""
    status: Mapped[MedusaNotificationStatus] = mapped_column(
        string_enum(MedusaNotificationStatus, "medusa_notification_status"),
        nullable=False,
        server_default=MedusaNotificationStatus.PENDING.value,
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """The lease of the worker sending it; another worker takes it only once this has passed."""
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    """Why the last attempt failed; redacted and bounded."""
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.id.hex}"
