"""Applying a transaction NetValve's own record proves, whatever told us of it (a webhook, the
sweep's second look): a late approval, an extra charge, or an operation made outside this
service. Each is applied at most once, under the payment's row lock, with amounts from the
record.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.netvalve import TransactionRecord
from app.core import metrics
from app.core.config import Settings
from app.core.money import from_minor_units
from app.db.session import transaction
from app.models.extra_charge import ExtraCharge
from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.repositories.extra_charge_repository import ExtraChargeRepository
from app.repositories.payment_repository import PaymentRepository
from app.services.medusa_notifications import LedgerMark, MedusaOutbox
from app.services.netvalve.disputes import apply_chargeback, charged_back_extra
from app.services.netvalve.extra_charges import give_back
from app.services.netvalve.proof import ROOT_OPERATIONS, minor_of
from app.services.netvalve.results import EventOutcome

log = structlog.get_logger(__name__)

# The states from which an operation NetValve made can be recorded, and the states that come
# before them: an event for a capture, refund or cancel that finds the payment in an earlier
# state overtook the event it depends on (webhooks are not ordered), so it waits for it.
_APPLICABLE_FROM: dict[Operation, frozenset[PaymentState]] = {
    Operation.CAPTURE: frozenset({PaymentState.AUTHORIZED}),
    Operation.REFUND: frozenset({PaymentState.CAPTURED, PaymentState.PARTIALLY_REFUNDED}),
    Operation.CANCEL: frozenset({PaymentState.AUTHORIZED}),
}
_UNPAID = frozenset({PaymentState.REQUIRES_PAYMENT, PaymentState.PENDING})
_EARLIER: dict[Operation, frozenset[PaymentState]] = {
    Operation.CAPTURE: _UNPAID,
    Operation.REFUND: _UNPAID | {PaymentState.AUTHORIZED},
    Operation.CANCEL: _UNPAID,
}


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: EventOutcome
    extra_charge_id: uuid.UUID | None = None
    already: bool = False  # the ledger held the transaction already


class ProvenTransactions:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessionmaker = sessionmaker
        self._outbox = MedusaOutbox(settings)

    async def apply(
        self, payment_id: uuid.UUID, operation: Operation | None, record: TransactionRecord
    ) -> Applied:
        """Apply a proven transaction under the payment's row lock. Nothing here answers a
        request of Medusa's (NetValve's webhook, an operator's replay, the sweep's second look),
        so a change Medusa is told of adds its notification to this same transaction."""
        async with transaction(self._sessionmaker) as session:
            payment = await PaymentRepository(session).get(payment_id, for_update=True)
            if payment is None:  # pragma: no cover - payments are never deleted
                return Applied(EventOutcome("unmatched", "the payment is gone"))
            before = LedgerMark.of(payment)
            applied = await self._apply_locked(session, payment, operation, record)
            self._outbox.note(session, payment, before)
            return applied

    async def _apply_locked(
        self,
        session: AsyncSession,
        payment: Payment,
        operation: Operation | None,
        record: TransactionRecord,
    ) -> Applied:
        ledger = PaymentRepository(session)
        if payment.in_flight is not None:
            return Applied(
                EventOutcome("retry", "another operation started on the payment", payment.id)
            )
        extras = ExtraChargeRepository(session)
        if operation is None:
            disputed = await extras.for_transaction(record.transaction_id)
            if disputed is not None:  # the cardholder's bank took an extra charge back
                return Applied(charged_back_extra(payment, disputed, record))
            return Applied(apply_chargeback(payment, record))
        if await ledger.applied(record.transaction_id) is not None:
            return Applied(
                EventOutcome(
                    "ignored",
                    f"NetValve's transaction {record.transaction_id} is already in the ledger",
                    payment.id,
                ),
                already=True,
            )
        if operation in ROOT_OPERATIONS:
            return await self._apply_root(session, payment, record)
        extra = await extras.for_transaction(record.parent_id or 0)
        if extra is not None and extra.payment_id == payment.id:
            return Applied(_reversed_outside(ledger, payment, extra, operation, record))
        return Applied(self._apply_child(ledger, payment, operation, record))

    async def _apply_root(
        self, session: AsyncSession, payment: Payment, record: TransactionRecord
    ) -> Applied:
        """A sale or authorization of one of our attempts that the ledger does not hold: the
        payment's charge if it has none, else an extra charge."""
        ledger = PaymentRepository(session)
        attempt = await ledger.attempt_for_order(record.client_order_id or "")
        if attempt is None:  # pragma: no cover - proven by _belongs moments ago
            return Applied(EventOutcome("ignored", "the attempt is gone", payment.id))
        amount = _minor(record, payment) or 0
        attempt.outcome = AttemptOutcome.APPROVED
        attempt.transaction_id = record.transaction_id
        attempt.response_code = record.response_code
        attempt.response_message = record.response_message
        attempt.resolved_at = attempt.resolved_at or _now()
        # The charge only if it is for what the payment costs now: a late sale of an earlier
        # amount (the cart changed since) must not show the payment as paid.
        if payment.state is PaymentState.REQUIRES_PAYMENT and amount == payment.amount_minor:
            sale = attempt.operation is Operation.SALE
            attempt.reason = "late_approval"
            payment.state = PaymentState.CAPTURED if sale else PaymentState.AUTHORIZED
            payment.transaction_id = record.transaction_id
            payment.settled_transaction_id = record.transaction_id if sale else None
            payment.authorized_minor = amount
            payment.captured_minor = amount if sale else 0
            payment.card_number = record.card_number
            payment.card_type = record.card_type
            payment.response_code = record.response_code
            payment.response_message = record.response_message
            payment.decline_type = None
            await session.flush()
            log.warning(
                "payment.late_approval",
                payment_id=str(payment.id),
                attempt_id=str(attempt.id),
                transaction_id=record.transaction_id,
            )
            return Applied(
                EventOutcome("applied", "a late approval: the payment's charge", payment.id)
            )
        attempt.reason = "extra_charge"
        charge = ExtraCharge(
            id=uuid.uuid4(),
            payment_id=payment.id,
            attempt_id=attempt.id,
            transaction_id=record.transaction_id,
            operation=attempt.operation,
            amount_minor=amount,
            currency=payment.currency,
            detail=f"NetValve approved attempt {attempt.client_order_id} while the payment was "
            f"{payment.state.value} with transaction {payment.transaction_id}",
        )
        ExtraChargeRepository(session).add(charge)
        payment.extra_charged_minor += amount
        await session.flush()
        metrics.EXTRA_CHARGES.labels("found").inc()
        log.error(
            "payment.extra_charge",
            payment_id=str(payment.id),
            transaction_id=record.transaction_id,
            amount_minor=amount,
        )
        outcome = EventOutcome(
            "applied",
            f"an extra charge of {from_minor_units(amount, payment.currency)} "
            f"{payment.currency}: NetValve approved transaction {record.transaction_id} beyond "
            "the payment's own charge",
            payment.id,
        )
        return Applied(outcome, charge.id)

    @staticmethod
    def _apply_child(
        ledger: PaymentRepository,
        payment: Payment,
        operation: Operation,
        record: TransactionRecord,
    ) -> EventOutcome:
        amount = _minor(record, payment) or 0
        if payment.state not in _APPLICABLE_FROM[operation]:
            if payment.state in _EARLIER[operation]:
                return EventOutcome(
                    "retry", "an earlier event this one depends on is not applied yet", payment.id
                )
            return _disagreement(
                payment, record, f"the payment is {payment.state.value}: no {operation.value}"
            )
        if operation is Operation.CAPTURE:
            if amount > payment.authorized_minor:
                return _disagreement(payment, record, "more than the ledger authorized")
            payment.state = PaymentState.CAPTURED
            payment.captured_minor = amount
            payment.settled_transaction_id = record.transaction_id
        elif operation is Operation.REFUND:
            if amount > payment.captured_minor - payment.refunded_minor:
                return _disagreement(payment, record, "more than the ledger has to refund")
            payment.refunded_minor += amount
            payment.state = (
                PaymentState.REFUNDED
                if payment.refunded_minor == payment.captured_minor
                else PaymentState.PARTIALLY_REFUNDED
            )
        else:
            payment.state = PaymentState.CANCELED
        payment.response_code = record.response_code
        payment.response_message = record.response_message
        ledger.add_attempt(_recorded(payment, operation, amount, record, "webhook"))
        log.info(
            "payment.outside_operation_applied",
            payment_id=str(payment.id),
            operation=operation.value,
            transaction_id=record.transaction_id,
        )
        return EventOutcome("applied", None, payment.id)


def _now() -> datetime:
    return datetime.now(UTC)


def _minor(record: TransactionRecord, payment: Payment) -> int | None:
    return minor_of(record.amount, payment.currency) if record.amount is not None else None


def _disagreement(payment: Payment, record: TransactionRecord, why: str) -> EventOutcome:
    """NetValve holds a proven transaction the ledger cannot take: flagged loudly."""
    metrics.WEBHOOK_UNPROVEN.labels("ledger").inc()
    log.error(
        "payment.gateway_disagrees",
        payment_id=str(payment.id),
        transaction_id=record.transaction_id,
        kind=record.kind,
        why=why,
    )
    return EventOutcome(
        "ignored",
        f"NetValve's {record.kind} {record.transaction_id} cannot apply: {why}",
        payment.id,
    )


def _recorded(
    payment: Payment,
    operation: Operation,
    amount: int,
    record: TransactionRecord,
    reason: str,
) -> PaymentAttempt:
    return PaymentAttempt(
        id=uuid.uuid4(),
        payment_id=payment.id,
        operation=operation,
        amount_minor=amount,
        outcome=AttemptOutcome.APPROVED,
        transaction_id=record.transaction_id,
        response_code=record.response_code,
        response_message=record.response_message,
        reason=reason,
        resolved_at=_now(),
    )


def _reversed_outside(
    ledger: PaymentRepository,
    payment: Payment,
    charge: ExtraCharge,
    operation: Operation,
    record: TransactionRecord,
) -> EventOutcome:
    """A void or refund of an extra charge made at NetValve (by an operator, or ours); refunds
    may come in parts, and the charge is reversed once they add up to it."""
    amount = _minor(record, payment) or 0
    ledger.add_attempt(_recorded(payment, operation, amount, record, "extra_charge_reversal"))
    given = charge.amount_minor if operation is Operation.CANCEL else amount
    give_back(payment, charge, given, record.transaction_id)
    return EventOutcome("applied", "a reversal of an extra charge", payment.id)
