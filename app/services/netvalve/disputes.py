"""Chargebacks: the cardholder's bank taking a payment, or an extra charge, back."""

from datetime import UTC, datetime

import structlog

from app.clients.netvalve import TransactionRecord
from app.models.extra_charge import ExtraCharge, ExtraChargeStatus
from app.models.payment import Payment
from app.services.netvalve.extra_charges import give_back
from app.services.netvalve.proof import minor_of
from app.services.netvalve.results import EventOutcome

log = structlog.get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def apply_chargeback(payment: Payment, record: TransactionRecord) -> EventOutcome:
    """The largest proven disputed amount is kept, so order and repetition do not matter;
    the amount comes from NetValve's record, and never exceeds what was captured."""
    disputed = min(
        max((minor_of(amount, payment.currency) or 0) for amount in record.chargebacks),
        payment.captured_minor,
    )
    if disputed <= payment.charged_back_minor:
        return EventOutcome("ignored", "no larger chargeback than recorded", payment.id)
    payment.charged_back_minor = disputed
    payment.charged_back_at = payment.charged_back_at or _now()
    log.warning("payment.charged_back", payment_id=str(payment.id), amount_minor=disputed)
    return EventOutcome("applied", None, payment.id)


def charged_back_extra(
    payment: Payment, charge: ExtraCharge, record: TransactionRecord
) -> EventOutcome:
    """The bank took the extra charge back: no longer held, and never to be refunded too."""
    if charge.status is ExtraChargeStatus.REVERSED:
        return EventOutcome("ignored", "the extra charge is reversed already", payment.id)
    give_back(payment, charge, charge.amount_minor, None)
    charge.detail = f"charged back by the cardholder's bank ({max(record.chargebacks)})"
    return EventOutcome("applied", "a chargeback of an extra charge", payment.id)
