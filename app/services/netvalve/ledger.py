"""The ledger: applying how an attempt ended (a `Settlement`) to the payment and the attempt.

An answer is applied at most once, under the payment's row lock, and only while the attempt is
still the payment's open operation: whoever applies first (the request, the sweep, a webhook)
wins, and the record it wrote stands.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.db.session import Phases, transaction
from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.repositories.payment_repository import NOT_FOUND, PaymentRepository
from app.schemas.payment import PaymentUpdate
from app.services.medusa_notifications import LedgerMark, MedusaOutbox
from app.services.netvalve.proof import ROOT_OPERATIONS
from app.services.netvalve.settlement import Settlement

log = structlog.get_logger(__name__)

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

    def phases(self) -> Phases:
        """Phases of an operation that no caller continues or closes: each commits alone."""
        return Phases(self._sessionmaker)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[PaymentRepository]:
        """One short transaction on the ledger, committed on exit."""
        async with transaction(self._sessionmaker) as session:
            yield PaymentRepository.from_session(session)

    async def apply(
        self,
        payment_id: uuid.UUID,
        attempt_id: uuid.UUID,
        settlement: Settlement,
        *,
        notify_medusa: bool,
    ) -> tuple[Payment, bool]:
        """Apply `settlement` to the attempt; False if another caller resolved it first.

        With `notify_medusa`, a change Medusa is told of (see app/services/medusa_notifications)
        adds its notification to this same transaction: it exists if and only if the change
        commits."""
        async with self.open() as ledger:
            return await self.apply_in(
                ledger, payment_id, attempt_id, settlement, notify_medusa=notify_medusa
            )

    async def apply_in(
        self,
        ledger: PaymentRepository,
        payment_id: uuid.UUID,
        attempt_id: uuid.UUID,
        settlement: Settlement,
        *,
        notify_medusa: bool,
    ) -> tuple[Payment, bool]:
        """`apply`, in the caller's transaction (see app.db.session.Phases)."""
        answered = settlement.outcome in (AttemptOutcome.APPROVED, AttemptOutcome.PENDING)
        named = settlement.transaction_id if answered else None
        payment, attempt, named_elsewhere = present(
            await ledger.for_apply(payment_id, attempt_id, named)
        )
        before = LedgerMark.of(payment)
        if payment.in_flight_attempt_id != attempt.id:
            # Settled meanwhile (by the sweep, the request or a webhook): the record the
            # winner wrote stands, its transaction id above all, which dedups webhooks.
            return payment, False
        if named_elsewhere:
            # An answer naming a transaction the ledger already holds cannot be this
            # attempt's: it stays open and is settled from NetValve's record of our own
            # clientOrderId instead.
            log.warning(
                "payment.answer_names_known_transaction",
                payment_id=str(payment.id),
                transaction_id=named,
            )
            settlement = Settlement(
                outcome=AttemptOutcome.UNKNOWN, http_status=200, reason="known_transaction"
            )
        _record(attempt, settlement)
        if settlement.not_found and attempt.client_order_id is not None:
            attempt.reason = NOT_FOUND  # looked up once more later: see GatewayEventService
        changes = _changes(payment, attempt, settlement)
        ledger.apply(payment, changes)
        await _record_absorbed_refunds(ledger, payment, attempt, settlement)
        if settlement.final:
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
                charge_ended=attempt.operation in ROOT_OPERATIONS and settlement.final,
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
    ledger: PaymentRepository, payment: Payment, attempt: PaymentAttempt, settlement: Settlement
) -> None:
    """A refund resolved from NetValve's record takes the record's total, which includes
    refunds made at NetValve that the ledger has not seen yet. The attempt takes one refund
    of its own amount that the ledger does not hold yet; each other one is recorded as
    applied, so that their webhooks change nothing when they arrive."""
    absorbed = settlement.absorbed_refunds
    if attempt.operation is not Operation.REFUND or absorbed is None:
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
                response_code=settlement.response_code,
                response_message=settlement.response_message,
                resolved_at=_now(),
            )
        )


def _changes(payment: Payment, attempt: PaymentAttempt, settlement: Settlement) -> PaymentUpdate:
    if settlement.outcome is AttemptOutcome.APPROVED:
        return _approved(payment, attempt, settlement)
    root = attempt.operation in ROOT_OPERATIONS
    if not settlement.final:
        if root and not settlement.already_done:
            pending = PaymentUpdate(state=PaymentState.PENDING)
            if settlement.outcome is AttemptOutcome.PENDING:
                pending.transaction_id = settlement.transaction_id
            return pending
        return PaymentUpdate()
    return _refused(attempt, settlement)


def _approved(payment: Payment, attempt: PaymentAttempt, settlement: Settlement) -> PaymentUpdate:
    operation, amount = attempt.operation, attempt.amount_minor or 0
    if operation in ROOT_OPERATIONS:
        captured = amount if operation is Operation.SALE else 0
        update = PaymentUpdate(
            state=PaymentState.CAPTURED if captured else PaymentState.AUTHORIZED,
            transaction_id=settlement.transaction_id,
            settled_transaction_id=settlement.transaction_id if captured else None,
            authorized_minor=amount,
            captured_minor=captured,
            card_number=settlement.card_number,
            card_type=settlement.card_type,
            decline_type=None,
        )
    elif operation is Operation.CAPTURE:
        # From NetValve's record when resolved from it (the amount actually captured).
        reported = settlement.captured_minor
        update = PaymentUpdate(
            state=PaymentState.CAPTURED,
            captured_minor=min(amount if reported is None else reported, payment.authorized_minor),
            settled_transaction_id=settlement.transaction_id,
        )
    elif operation is Operation.REFUND:
        total = settlement.refunded_minor
        refunded = min(
            payment.refunded_minor + amount if total is None else total, payment.captured_minor
        )
        update = PaymentUpdate(
            state=PaymentState.REFUNDED
            if refunded == payment.captured_minor
            else PaymentState.PARTIALLY_REFUNDED,
            refunded_minor=refunded,
        )
    else:
        update = PaymentUpdate(state=PaymentState.CANCELED)
    update.response_code = settlement.response_code
    update.response_message = settlement.response_message
    return update


def _refused(attempt: PaymentAttempt, settlement: Settlement) -> PaymentUpdate:
    """A refusal: a payment attempt may be retried with a new token; an operation on a
    captured payment leaves it as it was."""
    root = attempt.operation in ROOT_OPERATIONS
    update = PaymentUpdate()
    if root:
        update.state = PaymentState.REQUIRES_PAYMENT
        update.transaction_id = None  # a pending answer's id, now declined: no charge
    if settlement.outcome is AttemptOutcome.DECLINED:
        update.response_code = settlement.response_code
        update.response_message = settlement.response_message
        if root:
            update.decline_type = "hard" if settlement.hard_decline else "soft"
            if settlement.card_number:
                update.card_number = settlement.card_number
                update.card_type = settlement.card_type
    elif (
        settlement.outcome is AttemptOutcome.VALIDATION_FAILED
        and settlement.response_code is not None
    ):
        update.response_code = settlement.response_code
        update.response_message = settlement.response_message
    return update


def _record(attempt: PaymentAttempt, settlement: Settlement) -> None:
    attempt.http_status = settlement.http_status
    attempt.elapsed_ms = settlement.elapsed_ms
    attempt.outcome = settlement.outcome
    if settlement.outcome in (
        AttemptOutcome.APPROVED,
        AttemptOutcome.PENDING,
        AttemptOutcome.DECLINED,
    ):
        attempt.response_code = settlement.response_code
        attempt.response_message = settlement.response_message
        attempt.transaction_id = settlement.transaction_id or attempt.transaction_id
    elif settlement.outcome in (
        AttemptOutcome.VALIDATION_FAILED,
        AttemptOutcome.AUTHENTICATION_FAILED,
    ):
        attempt.response_code = settlement.response_code
    else:
        attempt.reason = settlement.reason
