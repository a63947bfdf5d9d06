"""The payment resource: the reference family (Base, Request, Response, Update, Deleted)."""

import uuid
from datetime import datetime
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from app.models.payment import PaymentState
from app.schemas.base import ApiSchema, MedusaId, MoneyIn, MoneyOut, RequestSchema

MedusaStatus = Literal["authorized", "captured", "pending", "requires_more", "error", "canceled"]


class PaymentBase(ApiSchema):
    payment_session_id: str = Field(description="Medusa's payment session (payses_...).")
    cart_id: str | None = Field(description="Medusa's cart the session belongs to.")
    currency_code: str = Field(description="ISO 4217, upper case.", examples=["EUR"])
    amount: MoneyOut = Field(description="What is charged: Medusa's amount, rounded half-up.")


class PaymentRequest(RequestSchema):
    """Authorize (manual capture) or sell with a hosted-payment-fields token."""

    model_config = RequestSchema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "payment_session_id": "payses_01JDEMOSESSION00000000000",
                    "payment_token": "23ee9bf0-0270-4752-8ced-4a7c7a9b1f3e",
                    "customer_ip": "203.0.113.9",
                }
            ]
        }
    }

    exactly_one_of: ClassVar[tuple[str, ...]] = ("payment_session_id", "cart_id")

    payment_session_id: MedusaId | None = None
    cart_id: MedusaId | None = Field(default=None, description="Uses the cart's active session.")
    payment_token: str = Field(min_length=8, max_length=200, description="The HPF paymentToken.")
    customer_ip: str | None = Field(default=None, max_length=45)
    amount: MoneyIn | None = Field(
        default=None,
        description="Optional check: refused with 422 unless it equals Medusa's amount.",
    )

    @model_validator(mode="after")
    def _one_reference(self) -> Self:
        if (self.payment_session_id is None) == (self.cart_id is None):
            raise ValueError("give exactly one of payment_session_id and cart_id")
        return self


class PaymentResponse(PaymentBase):
    id: uuid.UUID = Field(description="Our payment id; NetValve's clientOrderId derives from it.")
    status: MedusaStatus = Field(description="Medusa's payment-session status.")
    state: PaymentState = Field(description="The ledger's detailed state.")
    transaction_id: int | None = Field(description="NetValve's approved sale or authorization.")
    authorized_amount: MoneyOut
    captured_amount: MoneyOut
    refunded_amount: MoneyOut
    medusa_amount: MoneyOut = Field(description="Medusa's unrounded amount, e.g. 98.9009.")
    card_number: str | None = Field(description="Masked by NetValve: 401200******5439.")
    card_type: str | None
    response_code: str | None = Field(description="NetValve's last response code.")
    response_message: str | None
    in_progress: str | None = Field(description="A gateway operation not yet settled.")
    charged_back_amount: MoneyOut = Field(description="Disputed by the cardholder's bank.")
    charged_back_at: datetime | None
    extra_charged_amount: MoneyOut = Field(
        description="Approved at NetValve beyond this payment's own charge (a late or duplicate "
        "sale) and not reversed yet: money the shopper paid that Medusa does not show."
    )
    created_at: datetime
    updated_at: datetime


class PaymentUpdate(ApiSchema):
    """What one gateway answer changes on a payment; unset fields stay as they are."""

    state: PaymentState | None = None
    transaction_id: int | None = None
    settled_transaction_id: int | None = None
    authorized_minor: int | None = None
    captured_minor: int | None = None
    refunded_minor: int | None = None
    card_number: str | None = None
    card_type: str | None = None
    response_code: str | None = None
    response_message: str | None = None
    decline_type: str | None = None


class PaymentDeleted(ApiSchema):
    """Payments are never deleted (they are the audit trail); a void is `state=canceled`.

    Kept so the family is complete; no route returns it.
    """

    id: uuid.UUID
    deleted: Literal[False] = False
