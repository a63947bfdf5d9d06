"""The ledger: applying NetValve's answer for one attempt to the payment and the attempt.

An answer is applied at most once, under the payment's row lock, and only while the attempt is
still the payment's open operation: whoever applies first (the request, the sweep, a webhook)
wins, and the record it wrote stands.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.netvalve import (
    Approved,
    AuthenticationFailed,
    Declined,
    NetvalveResult,
    Pending,
    UnknownOutcome,
    ValidationFailed,
)
from app.core.config import Settings
from app.models.payment import (
    AttemptOutcome,
    Operation,
    Payment,
    PaymentAttempt,
    PaymentState,
)
from app.repositories.payment_repository import NOT_FOUND, PaymentRepository
from app.schemas.payment import PaymentUpdate
from app.services.medusa_notifications import LedgerMark, MedusaOutbox
from app.services.netvalve.proof import ROOT_OPERATIONS

log = structlog.get_logger(__name__)

_ALREADY = {"GTW_2045", "GTW_2046", "GTW_2047"}

T = TypeVar("T")


def present(value: T | None) -> T:
    """A value the ledger's invariants guarantee; its absence is a bug, not a request error."""
    if value is None:
        raise RuntimeError("ledger invariant broken: a required value is missing")
    return value


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._outbox = MedusaOutbox(settings)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[PaymentRepository]:
        """One short transaction on the ledger, committed on exit."""
        async with self._sessionmaker.begin() as session:
            yield PaymentRepository.from_session(session)

    async def apply(
        self,
        payment_id: uuid.UUID,
        attempt_id: uuid.UUID,
        result: NetvalveResult,
        *,
        notify_medusa: bool,
    ) -> tuple[Payment, bool]:
        """Apply `result` to the attempt; False if another caller settled the attempt first.

        With `notify_medusa`, a change Medusa is told of (see app/services/medusa_notifications)
        adds its notification to this same transaction: it exists if and only if the change
        commits."""
        async with self.open() as ledger:
            payment = await ledger.get(payment_id, for_update=True)
            attempt = await ledger.attempt(attempt_id)
            payment, attempt = present(payment), present(attempt)
            before = LedgerMark.of(payment)
            if payment.in_flight_attempt_id != attempt.id:
                # Settled meanwhile (by the sweep, the request or a webhook): the record the
                # winner wrote stands, its transaction id above all, which dedups webhooks.
                return payment, False
            named = result.transaction_id if isinstance(result, Approved | Pending) else None
            if named is not None and await ledger.applied_elsewhere(named, attempt.id):
                # An answer naming a transaction the ledger already holds cannot be this
                # attempt's: it stays open and is settled from NetValve's record of our own
                # clientOrderId instead.
                log.warning(
                    "payment.answer_names_known_transaction",
                    payment_id=str(payment.id),
                    transaction_id=named,
                )
                result = UnknownOutcome(
                    operation=result.operation,
                    http_status=200,
                    reason="known_transaction",
                )
            _record(attempt, result)
            if is_not_found_answer(result) and attempt.client_order_id is not None:
                attempt.reason = NOT_FOUND  # looked up once more later: see GatewayEventService
            changes = _changes(payment, attempt, result)
            ledger.apply(payment, changes)
            await _record_absorbed_refunds(ledger, payment, attempt, result)
            if resolved(result):
                payment.in_flight = None
                payment.in_flight_attempt_id = None
                attempt.resolved_at = _now()
            else:
                payment.next_reconcile_at = _now() + timedelta(
                    seconds=self._settings.reconcile_interval_seconds
                )
            await ledger.settle(payment)
            if notify_medusa:
                self._outbox.note(
                    ledger.session,
                    payment,
                    before,
                    charge_ended=attempt.operation in ROOT_OPERATIONS and resolved(result),
                )
            log.info(
                "payment.attempt_applied",
                payment_id=str(payment.id),
                operation=attempt.operation.value,
                outcome=attempt.outcome.value,
                state=payment.state.value,
            )
        return payment, True


async def _record_absorbed_refunds(
    ledger: PaymentRepository,
    payment: Payment,
    attempt: PaymentAttempt,
    result: NetvalveResult,
) -> None:
    """A refund settled from NetValve's record takes the record's total, which includes
    refunds made at NetValve that the ledger has not seen yet. The attempt takes one refund
    of its own amount that the ledger does not hold yet; each other one is recorded as
    applied, so that their webhooks change nothing when they arrive."""
    if attempt.operation is not Operation.REFUND or not isinstance(result, Approved):
        return
    absorbed = result.body.get("absorbedRefunds")
    if absorbed is None:
        return  # a direct answer: it names its own transaction
    fresh = [
        (transaction_id, amount_minor)
        for transaction_id, amount_minor in absorbed
        if await ledger.applied(transaction_id) is None
    ]
    if attempt.transaction_id is None:
        own = next((item for item in reversed(fresh) if item[1] == attempt.amount_minor), None)
        if own is not None:
            attempt.transaction_id = own[0]
            fresh.remove(own)
    for transaction_id, amount_minor in fresh:
        ledger.add_attempt(
            PaymentAttempt(
                id=uuid.uuid4(),
                payment_id=payment.id,
                operation=Operation.REFUND,
                amount_minor=amount_minor,
                outcome=AttemptOutcome.APPROVED,
                transaction_id=transaction_id,
                reason="netvalve_record",
                response_code=result.response_code,
                response_message=result.response_message,
                resolved_at=_now(),
            )
        )


def _changes(payment: Payment, attempt: PaymentAttempt, result: NetvalveResult) -> PaymentUpdate:
    operation = attempt.operation
    amount = attempt.amount_minor or 0
    if isinstance(result, Approved):
        fields = _gateway_fields(result) | {"decline_type": None}
        if operation in (Operation.SALE, Operation.AUTHORIZE):
            captured = amount if operation is Operation.SALE else 0
            return PaymentUpdate(
                state=PaymentState.CAPTURED if captured else PaymentState.AUTHORIZED,
                transaction_id=result.transaction_id,
                settled_transaction_id=result.transaction_id if captured else None,
                authorized_minor=amount,
                captured_minor=captured,
                **fields,
            )
        if operation is Operation.CAPTURE:
            # From NetValve's record when settled from it (the amount actually captured).
            captured = min(int(result.body.get("ledgerMinor", amount)), payment.authorized_minor)
            return PaymentUpdate(
                state=PaymentState.CAPTURED,
                captured_minor=captured,
                settled_transaction_id=result.transaction_id,
                response_code=result.response_code,
                response_message=result.response_message,
            )
        if operation is Operation.REFUND:
            refunded = min(
                int(result.body.get("ledgerMinor", payment.refunded_minor + amount)),
                payment.captured_minor,
            )
            return PaymentUpdate(
                state=PaymentState.REFUNDED
                if refunded == payment.captured_minor
                else PaymentState.PARTIALLY_REFUNDED,
                refunded_minor=refunded,
                response_code=result.response_code,
                response_message=result.response_message,
            )
        return PaymentUpdate(
            state=PaymentState.CANCELED,
            response_code=result.response_code,
            response_message=result.response_message,
        )
    if isinstance(result, Pending | UnknownOutcome) or already_done(result):
        if operation in (Operation.SALE, Operation.AUTHORIZE) and not already_done(result):
            pending = PaymentUpdate(state=PaymentState.PENDING)
            if isinstance(result, Pending):
                pending.transaction_id = result.transaction_id
            return pending
        return PaymentUpdate()
    # A refusal: a payment attempt may be retried with a new token; an operation on a
    # settled payment leaves it as it was.
    update = PaymentUpdate()
    if operation in (Operation.SALE, Operation.AUTHORIZE):
        update.state = PaymentState.REQUIRES_PAYMENT
        update.transaction_id = None  # a pending answer's id, now declined: no charge
    if isinstance(result, Declined):
        update.response_code = result.response_code
        update.response_message = result.response_message
        if operation in (Operation.SALE, Operation.AUTHORIZE):
            update.decline_type = "hard" if result.hard else "soft"
            if result.body.get("cardNumber"):
                update.card_number = result.body.get("cardNumber")
                update.card_type = result.body.get("cardType")
    elif isinstance(result, ValidationFailed) and result.errors:
        update.response_code = result.errors[0].response_code
        update.response_message = result.errors[0].response_message
    return update


def _gateway_fields(result: Approved | Pending | Declined) -> dict[str, Any]:
    body = result.body
    return {
        "response_code": result.response_code,
        "response_message": result.response_message,
        "card_number": body.get("cardNumber") or None,
        "card_type": body.get("cardType") or None,
    }


def _record(attempt: PaymentAttempt, result: NetvalveResult) -> None:
    attempt.http_status = result.http_status
    attempt.elapsed_ms = result.elapsed_ms
    if isinstance(result, Approved | Pending | Declined):
        attempt.outcome = {
            Approved: AttemptOutcome.APPROVED,
            Pending: AttemptOutcome.PENDING,
            Declined: AttemptOutcome.DECLINED,
        }[type(result)]
        attempt.response_code = result.response_code
        attempt.response_message = result.response_message
        attempt.transaction_id = result.transaction_id or attempt.transaction_id
    elif isinstance(result, ValidationFailed):
        attempt.outcome = AttemptOutcome.VALIDATION_FAILED
        attempt.response_code = result.errors[0].response_code if result.errors else None
    elif isinstance(result, AuthenticationFailed):
        attempt.outcome = AttemptOutcome.AUTHENTICATION_FAILED
        attempt.response_code = result.response_code
    elif isinstance(result, UnknownOutcome):
        attempt.outcome = AttemptOutcome.UNKNOWN
        attempt.reason = result.reason
    else:
        attempt.outcome = AttemptOutcome.UNAVAILABLE
        attempt.reason = result.reason


def resolved(result: NetvalveResult) -> bool:
    return not isinstance(result, Pending | UnknownOutcome) and not already_done(result)


def already_done(result: NetvalveResult) -> bool:
    """NetValve refused a capture, refund or cancel as already done: its record must decide."""
    return (
        isinstance(result, Declined)
        and result.response_code in _ALREADY
        and result.operation in ("capture", "refund", "cancel")
    )


def is_not_found_answer(result: NetvalveResult) -> bool:
    return isinstance(result, Declined) and result.http_status == 404
