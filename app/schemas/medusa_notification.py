"""The medusa_notifications resource: Base, Request, Response, Update and Deleted schemas.

`MedusaNotificationRequest` is the body this service POSTs to Medusa (the contract the Medusa
provider verifies and reads); the other schemas are the outbox row as operators see and change it.
"""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from app.models.medusa_notification import MedusaEventType, MedusaNotificationStatus
from app.models.payment import PaymentState
from app.schemas.base import ApiSchema


class MedusaNotificationBase(ApiSchema):
    payment_id: uuid.UUID = Field(description="The ledger payment whose change is reported.")
    event_type: MedusaEventType = Field(description="What changed, e.g. payment.captured.")


class MedusaNotificationData(ApiSchema):
    payment_id: uuid.UUID
    session_id: str = Field(description="Medusa's payment session (payses_...).")
    cart_id: str | None
    state: PaymentState = Field(description="The ledger state after the change.")
    amount: str = Field(
        description="Major units as a decimal string: the authorized amount for "
        "payment.authorized, the captured amount for payment.captured, the refunded total for "
        "payment.refunded, the payment's amount for payment.failed and payment.canceled."
    )
    currency_code: str = Field(description="ISO 4217, lower case as Medusa writes it.")
    transaction_id: int | None = Field(description="NetValve's sale or authorization.")


class MedusaNotificationRequest(ApiSchema):
    """What Medusa receives (Standard Webhooks headers webhook-id, webhook-timestamp and
    webhook-signature come with it). A pointer, not a fact: the provider reads the payment's
    current state from GET /status before it acts."""

    model_config = ApiSchema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "type": "payment.captured",
                    "timestamp": "2026-12-02T16:00:00.000Z",
                    "data": {
                        "payment_id": "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b",
                        "session_id": "payses_01JDEMOSESSION00000000000",
                        "cart_id": "cart_01JDEMOCART000000000000000",
                        "state": "captured",
                        "amount": "44.00",
                        "currency_code": "eur",
                        "transaction_id": 18747,
                    },
                }
            ]
        }
    }

    type: MedusaEventType
    timestamp: str = Field(description="ISO 8601 UTC time of the ledger change.")
    data: MedusaNotificationData


class MedusaNotificationResponse(MedusaNotificationBase):
    id: uuid.UUID
    webhook_id: str = Field(description="The Standard Webhooks webhook-id: the same every try.")
    status: MedusaNotificationStatus = Field(
        description="pending (to be sent, now or after a backoff), delivered (Medusa answered "
        "2xx) or failed (every attempt failed: replay it once Medusa is fixed)."
    )
    payload: MedusaNotificationRequest = Field(description="The body sent to Medusa.")
    attempts: int
    next_attempt_at: datetime = Field(description="When a pending notification is sent next.")
    locked_until: datetime | None = Field(description="Set while a worker is sending it.")
    last_status_code: int | None = Field(description="Medusa's HTTP status at the last attempt.")
    last_error: str | None = Field(description="Why the last attempt failed.")
    delivered_at: datetime | None
    created_at: datetime = Field(description="When the ledger change was committed.")
    updated_at: datetime


class MedusaNotificationUpdate(ApiSchema):
    """What one delivery attempt, or an operator's replay, changes on a notification; unset
    fields stay as they are."""

    status: MedusaNotificationStatus | None = None
    attempts: int | None = None
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


class MedusaNotificationDeleted(ApiSchema):
    """Notifications are never deleted (they record what Medusa was told); a failed one is
    replayed, not removed.

    Kept so the family is complete; no route returns it.
    """

    id: uuid.UUID
    deleted: Literal[False] = False


class MedusaNotificationPage(ApiSchema):
    items: list[MedusaNotificationResponse]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
