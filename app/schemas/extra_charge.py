"""The extra-charge resource: money NetValve holds for a payment beyond its own charge.

Read-only for operators, and reversed through an action; extra charges are never created,
edited or deleted through the API, so the family is Base and Response (plus the list page).
"""

import uuid
from datetime import datetime

from pydantic import Field

from app.models.extra_charge import ExtraChargeStatus
from app.models.payment import Operation
from app.schemas.base import ApiSchema, MoneyOut


class ExtraChargeBase(ApiSchema):
    payment_id: uuid.UUID = Field(description="The payment whose attempt NetValve approved.")
    transaction_id: int = Field(description="NetValve's approved sale or authorization.")
    operation: Operation = Field(description="sale or authorize.")
    currency_code: str = Field(validation_alias="currency", description="ISO 4217, upper case.")
    amount: MoneyOut = Field(description="What NetValve holds, in major units.")


class ExtraChargeResponse(ExtraChargeBase):
    id: uuid.UUID
    status: ExtraChargeStatus = Field(
        description="open (held), reversing, reversed, or reverse_failed (safe to retry)."
    )
    reversed_amount: MoneyOut = Field(description="Given back so far (refunds may come in parts).")
    reversal_transaction_id: int | None = Field(description="NetValve's void or refund.")
    reverse_tries: int
    detail: str | None = Field(description="How it was found; the last reversal's outcome.")
    reversed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ExtraChargePage(ApiSchema):
    items: list[ExtraChargeResponse]
