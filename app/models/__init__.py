"""Every ORM table this service owns; importing this module fills `Base.metadata`."""

from app.db.base import Base
from app.models.extra_charge import ExtraCharge, ExtraChargeStatus
from app.models.medusa_notification import (
    MedusaEventType,
    MedusaNotification,
    MedusaNotificationStatus,
)
from app.models.payment import (
    AttemptOutcome,
    HpfSession,
    IdempotencyKey,
    Operation,
    Payment,
    PaymentAttempt,
    PaymentState,
)
from app.models.webhook_event import WebhookEvent, WebhookEventStatus

__all__ = [
    "AttemptOutcome",
    "Base",
    "ExtraCharge",
    "ExtraChargeStatus",
    "HpfSession",
    "IdempotencyKey",
    "MedusaEventType",
    "MedusaNotification",
    "MedusaNotificationStatus",
    "Operation",
    "Payment",
    "PaymentAttempt",
    "PaymentState",
    "WebhookEvent",
    "WebhookEventStatus",
]
