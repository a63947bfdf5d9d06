"""What the NetValve service answers with: domain results, never HTTP responses."""

import dataclasses
import uuid
from decimal import Decimal
from typing import Literal

from app.core.money import from_minor_units
from app.models.payment import Payment, PaymentState
from app.schemas.payment import MedusaStatus, PaymentResponse

# The states whose money is captured (refunds included): Medusa calls them all `captured`.
CAPTURED_STATES = frozenset(
    {PaymentState.CAPTURED, PaymentState.PARTIALLY_REFUNDED, PaymentState.REFUNDED}
)
PAID_STATES = CAPTURED_STATES | {PaymentState.AUTHORIZED}


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentResult:
    """A payment after an operation. `in_progress`: NetValve's final answer is not known yet
    (sent, pending or unknown), so the caller should look again (GET /status) before relying
    on the state."""

    payment: PaymentResponse
    in_progress: bool = False


def medusa_status(payment: Payment) -> MedusaStatus:
    """The ledger state in Medusa's payment-session vocabulary."""
    if payment.state is PaymentState.AUTHORIZED:
        return "authorized"
    if payment.state in CAPTURED_STATES:
        return "captured"
    if payment.state is PaymentState.CANCELED:
        return "canceled"
    if payment.state is PaymentState.REQUIRES_PAYMENT and payment.response_code:
        return "error"
    return "pending"


def to_response(payment: Payment) -> PaymentResponse:
    def money(minor: int) -> Decimal:
        return from_minor_units(minor, payment.currency)

    return PaymentResponse(
        id=payment.id,
        payment_session_id=payment.payment_session_id,
        cart_id=payment.cart_id,
        currency_code=payment.currency,
        amount=money(payment.amount_minor),
        status=medusa_status(payment),
        state=payment.state,
        transaction_id=payment.transaction_id,
        authorized_amount=money(payment.authorized_minor),
        captured_amount=money(payment.captured_minor),
        refunded_amount=money(payment.refunded_minor),
        medusa_amount=Decimal(payment.medusa_amount),
        card_number=payment.card_number,
        card_type=payment.card_type,
        response_code=payment.response_code,
        response_message=payment.response_message,
        in_progress=payment.in_flight.value if payment.in_flight else None,
        charged_back_amount=money(payment.charged_back_minor),
        charged_back_at=payment.charged_back_at,
        extra_charged_amount=money(payment.extra_charged_minor),
        created_at=payment.created_at,
        updated_at=payment.updated_at,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class EventOutcome:
    """What applying an event did: `applied` it, `ignored` it (with why), asks to `retry` later,
    or found no payment (`unmatched`, retried too: it may have overtaken our commit)."""

    result: Literal["applied", "ignored", "retry", "unmatched"]
    reason: str | None = None
    payment_id: uuid.UUID | None = None
