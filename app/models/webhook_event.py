import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin


class WebhookEventStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"
    PENDING_MATCH = "pending_match"
    UNMATCHED = "unmatched"  # no payment matched after every try
    EXHAUSTED = "exhausted"  # could not be applied after every try: for an operator
    REJECTED = "rejected"


class WebhookEvent(TimestampMixin, Base):
    """An inbound NetValve webhook, stored before anything is applied (the inbox).

    NetValve sends no event id, so `dedup_key` is derived from the payload; the unique
    (source, dedup_key) pair turns a redelivery into a no-op insert.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("source", "dedup_key"),
        Index("ix_webhook_events_status_received_at", "status", "received_at"),
        Index("ix_webhook_events_due", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        default=uuid.uuid4,
        server_default=text("gen_random_uuid()"),
    )
    source: Mapped[str] = mapped_column(String(32), nullable=False, server_default="netvalve")
    dedup_key: Mapped[str] = mapped_column(String(128), nullable=False)
    event_name: Mapped[str | None] = mapped_column(String(64))
    transaction_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    client_order_id: Mapped[str | None] = mapped_column(String(100), index=True)
    raw_body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    headers: Mapped[dict[str, str]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    status: Mapped[WebhookEventStatus] = mapped_column(
        Enum(
            WebhookEventStatus,
            name="webhook_event_status",
            native_enum=False,
            create_constraint=True,
            length=20,
            values_callable=lambda enum: [member.value for member in enum],
        ),
        nullable=False,
        server_default=WebhookEventStatus.RECEIVED.value,
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the worker may (re)try it; also the lease a worker holds while processing."""
    payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    """Operator notes."""
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Soft delete: kept for audit, hidden from lists and never processed."""
