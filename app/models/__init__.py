"""Every ORM table this service owns; importing this module fills `Base.metadata`."""

from app.db.base import Base
from app.models.extra_charge import ExtraCharge, ExtraChargeStatus
from app.models.hpf_session import HpfSession
from app.models.idempotency_key import IdempotencyKey
from app.models.medusa_notification import (
    MedusaEventType,
    MedusaNotification,
    MedusaNotificationStatus,
)
from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
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
