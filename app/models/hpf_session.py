"""Hosted-payment-fields sessions handed to the storefront."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


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
