"""Public request and response models of the NetValve routes, beside the payment family."""

import uuid
from datetime import datetime
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from app.schemas.base import ApiSchema, MedusaId, MoneyIn, RequestSchema, TransactionId
from app.schemas.error import ErrorResponse
from app.schemas.payment import PaymentResponse

HpfSource = Literal["override_script", "override_hpp", "api", "backoffice", "hpp", "static"]


class HpfSessionRequest(RequestSchema):
    model_config = RequestSchema.model_config | {
        "json_schema_extra": {
            "examples": [{"payment_session_id": "payses_01JDEMOSESSION00000000000"}]
        }
    }

    exactly_one_of: ClassVar[tuple[str, ...]] = ("payment_session_id", "cart_id")

    payment_session_id: MedusaId | None = None
    cart_id: MedusaId | None = Field(default=None, description="Uses the cart's active session.")

    @model_validator(mode="after")
    def _one_reference(self) -> Self:
        if (self.payment_session_id is None) == (self.cart_id is None):
            raise ValueError("give exactly one of payment_session_id and cart_id")
        return self


class HpfSessionResponse(ApiSchema):
    id: uuid.UUID
    payment_session_id: str
    source: HpfSource = Field(description="Which step of the waterfall served this session.")
    script_src: str | None = Field(description="NetValve's SDK <script> src, when fields are used.")
    integrity: str | None
    payment_token: str | None = Field(description="Token the fields bind the card to.")
    redirect_url: str | None = Field(description="Hosted payment page, when a redirect is used.")
    amount: str
    currency_code: str
    expires_at: datetime
    reused: bool = Field(description="True when an unexpired session was handed out again.")


class HpfStep(ApiSchema):
    step: str
    outcome: str


class HpfUnavailableResponse(ErrorResponse):
    steps: list[HpfStep] = Field(description="Each waterfall step and why it did not serve.")


class _PaymentReference(RequestSchema):
    exactly_one_of: ClassVar[tuple[str, ...]] = ("transaction_id", "payment_id")

    transaction_id: TransactionId | None = Field(default=None, description="NetValve's id.")
    payment_id: uuid.UUID | None = Field(default=None, description="Our payment id.")

    @model_validator(mode="after")
    def _one_reference(self) -> Self:
        if (self.transaction_id is None) == (self.payment_id is None):
            raise ValueError("give exactly one of transaction_id and payment_id")
        return self


class CaptureRequest(_PaymentReference):
    model_config = _PaymentReference.model_config | {
        "json_schema_extra": {
            "examples": [{"payment_id": "9fc4d4e0-6338-4010-82f7-3808e1a0e109", "amount": "30.00"}]
        }
    }

    amount: MoneyIn | None = Field(default=None, description="Omit to capture all authorized.")


class RefundRequest(_PaymentReference):
    model_config = _PaymentReference.model_config | {
        "json_schema_extra": {"examples": [{"transaction_id": 18747, "amount": "10.00"}]}
    }

    amount: MoneyIn | None = Field(default=None, description="Omit to refund all that is left.")


class CancelRequest(_PaymentReference):
    model_config = _PaymentReference.model_config | {
        "json_schema_extra": {"examples": [{"payment_id": "9fc4d4e0-6338-4010-82f7-3808e1a0e109"}]}
    }


class DeclineResponse(ErrorResponse):
    """A 402: NetValve declined; the payment is as the ledger now has it."""

    payment: PaymentResponse
    response_code: str | None
    response_message: str | None
    decline_type: Literal["soft", "hard"] | None


class PaymentConflictResponse(ErrorResponse):
    """A 409 about the payment session: `AlreadyPaid` carries the payment as the ledger has it."""

    payment: PaymentResponse | None = Field(
        default=None, description="With AlreadyPaid: the payment that already holds the money."
    )


class StatusQuery(RequestSchema):
    transaction_id: TransactionId | None = None
    payment_id: uuid.UUID | None = None
    payment_session_id: MedusaId | None = None
    cart_id: MedusaId | None = None
    refresh: bool = Field(default=False, description="Confirm with NetValve before answering.")

    @model_validator(mode="after")
    def _one_reference(self) -> Self:
        given = [
            self.transaction_id,
            self.payment_id,
            self.payment_session_id,
            self.cart_id,
        ]
        if sum(value is not None for value in given) != 1:
            raise ValueError(
                "give exactly one of transaction_id, payment_id, payment_session_id, cart_id"
            )
        return self
