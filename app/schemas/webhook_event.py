"""The webhook_events resource: Base, Request, Response, Update and Deleted schemas."""

import uuid
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from app.core.cards import id_values, mask_pans, mask_pans_in_text
from app.models.webhook_event import WebhookEventStatus
from app.schemas.base import ApiSchema, PgText, RequestSchema

# NetValve's 19 event names (NETVALVE_API.md §10); intake answers 400 to any other.
WebhookEventName = Literal[
    "PURCHASED",
    "PURCHASE_FAILED",
    "PURCHASE_PENDING",
    "AUTHORISED",
    "AUTHORISATION_FAILED",
    "AUTHORISATION_PENDING",
    "CAPTURED",
    "CAPTURE_FAILED",
    "CAPTURE_PENDING",
    "CANCELLED",
    "CANCELLATION_FAILED",
    "CANCELLATION_PENDING",
    "REFUNDED",
    "REFUND_FAILED",
    "REFUND_PENDING",
    "REBILLED",
    "REBIL_FAILED",
    "REBILL_PENDING",
    "CHARGEBACK",
]


class WebhookEventBase(ApiSchema):
    source: str = Field(description="Who sent it; always netvalve for now.")
    event_name: str | None = Field(description="NetValve's eventName, e.g. PURCHASED.")
    transaction_id: int | None
    client_order_id: str | None


class WebhookEventRequest(ApiSchema):
    """What NetValve posts: `{eventName, data}` (NETVALVE_API.md §10). Read from the raw body."""

    model_config = ApiSchema.model_config | {
        "extra": "allow",
        "json_schema_extra": {
            "examples": [
                {
                    "eventName": "PURCHASED",
                    "data": {
                        "transactionType": "SALE",
                        "transactionId": 18747,
                        "clientOrderId": "9fc4d4e06338401082f73808e1a0e109-1",
                        "orderId": "5001",
                        "traceId": "6f1d2f4e-9a55-4f7c-9d0c-0b3c3c9a6f10",
                        "responseCode": "GTW_1000",
                        "responseCodeType": "APPROVED",
                        "amount": 44.00,
                    },
                }
            ]
        },
    }

    eventName: WebhookEventName
    data: dict[str, Any]


class WebhookEventResponse(WebhookEventBase):
    id: uuid.UUID
    dedup_key: str
    status: WebhookEventStatus
    attempts: int
    last_error: str | None
    payload: dict[str, Any] | None
    headers: dict[str, str]
    payment_id: uuid.UUID | None
    notes: str | None
    received_at: datetime
    processed_at: datetime | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @field_validator("payload", "headers")
    @classmethod
    def _no_card_numbers(cls, value: Any) -> Any:
        # Stored masked since intake masks them; rows stored before that are masked here.
        return mask_pans(value)

    @model_validator(mode="after")
    def _no_card_numbers_in_text(self) -> Self:
        # The same for the texts, but the event's own ids (its transactionId, quoted in most
        # reasons) are kept whole, as in its payload: masked, they would name no transaction.
        keep = id_values(self.payload) if self.payload else set()
        if self.last_error is not None:
            self.last_error = mask_pans_in_text(self.last_error, keep)
        if self.notes is not None:
            self.notes = mask_pans_in_text(self.notes, keep)
        return self


class WebhookEventUpdate(RequestSchema):
    """Operator changes: notes; `received` to process the event again, or `ignored` to
    resolve it by hand (it is never retried; say why in `notes`)."""

    notes: PgText | None = Field(default=None, max_length=4000)
    status: Literal["received", "ignored"] | None = Field(
        default=None,
        description="`received` queues the event for processing again; `ignored` resolves it "
        "by hand (an exhausted or unmatched event, once an operator has looked).",
    )


class WebhookEventDeleted(ApiSchema):
    id: uuid.UUID
    deleted: Literal[True] = True
    deleted_at: datetime


class WebhookEventPage(ApiSchema):
    items: list[WebhookEventResponse]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class WebhookReceipt(ApiSchema):
    """NetValve only needs the 200; the body says whether this delivery was new."""

    status: Literal["stored", "duplicate"]
    id: uuid.UUID | None
