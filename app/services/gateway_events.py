"""NetValve's webhook events, applied to the ledger only on proof from NetValve's own records.

An event is a pointer, not a fact: it can arrive late, twice, out of order, after the next
attempt has started, or name another payment's transaction or another operation. So:

1. The event points at a payment: the attempt that sent its clientOrderId, else a transaction id
   the ledger knows. None yet: it may have overtaken our own commit, so it is retried.
2. A failed or pending event moves no money. If the payment has an operation in flight, the event
   is a hint: that operation is settled from NetValve's record of exactly it, never from the
   event (an answer for one attempt never settles another).
3. An approved event, or a chargeback, is proven against NetValve's record of the transaction
   (GET /transaction, or the order of our clientOrderId when the event has no transaction id):
   the record must have the event's type, an approved status, the event's amount, the payment's
   currency, and belong to the payment: the clientOrderId of one of its attempts for a sale or
   authorization, its sale, authorization or capture as parent for a capture, refund or cancel.
   What is not proven is ignored with the reason, and counted in a metric.
4. A proven transaction is applied at most once (a unique index on approved attempts'
   transaction ids), with amounts from the record, in one transaction under the payment's row
   lock. A sale or authorization that is not the payment's own charge (a late answer after a
   retry was charged) is an extra charge: recorded, shown and counted, and reversed when
   NETVALVE_REVERSE_EXTRA_CHARGES asks for it.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.netvalve import (
    NetvalveClient,
    TransactionRecord,
    as_decimal,
    as_int,
    is_not_found,
    read_record,
)
from app.core import metrics
from app.core.config import Settings
from app.core.money import from_minor_units
from app.models.extra_charge import ExtraCharge, ExtraChargeStatus
from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.repositories.extra_charge_repository import ExtraChargeRepository
from app.repositories.payment_repository import NOT_FOUND_RECHECKED, PaymentRepository
from app.services.extra_charges import ExtraChargeService, give_back
from app.services.medusa_notifications import LedgerMark, MedusaOutbox
from app.services.netvalve_service import NetvalveService
from app.services.proof import RECORD_KINDS, ROOT_OPERATIONS, minor_of, root_mismatch

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
class EventOutcome:
    """What applying an event did: `applied` it, `ignored` it (with why), asks to `retry` later,
    or found no payment (`unmatched`, retried too: it may have overtaken our commit)."""

    result: Literal["applied", "ignored", "retry", "unmatched"]
    reason: str | None = None
    payment_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class _Unproven:
    code: str  # the metric's label: what did not match
    reason: str


@dataclass(frozen=True, slots=True)
class _Retry:
    reason: str


@dataclass(frozen=True, slots=True)
class _Proven:
    record: TransactionRecord
    picked_fresh: bool = False
    """Found through the order (no transaction id) as one the ledger did not hold yet."""


@dataclass(frozen=True, slots=True)
class _Applied:
    outcome: EventOutcome
    extra_charge_id: uuid.UUID | None = None
    already: bool = False  # the ledger held the transaction already


class GatewayEventService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: NetvalveClient,
        payments: NetvalveService,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._client = client
        self._payments = payments
        self._settings = settings
        self._extra = ExtraChargeService(sessionmaker, client, settings)
        self._outbox = MedusaOutbox(settings)

    async def apply(
        self, operation: Operation | None, outcome: str, data: dict[str, Any]
    ) -> EventOutcome:
        """Apply one event's news: `operation` None with outcome `chargeback` is a dispute."""
        client_order_id = _text(data.get("clientOrderId"))
        async with self._sessionmaker.begin() as session:
            payment = await PaymentRepository(session).find_for_event(
                client_order_id, as_int(data.get("transactionId"))
            )
        if payment is None:
            return EventOutcome("unmatched", "no payment matches yet")
        if outcome in ("failed", "pending"):
            return await self._hint(payment, outcome)
        proven = await self._prove(operation, data, payment)
        if isinstance(proven, _Unproven):
            metrics.WEBHOOK_UNPROVEN.labels(proven.code).inc()
            log.warning(
                "webhook.unproven",
                payment_id=str(payment.id),
                mismatch=proven.code,
                reason=proven.reason,
            )
            return EventOutcome("ignored", f"not proven: {proven.reason}", payment.id)
        if isinstance(proven, _Retry):
            return EventOutcome("retry", proven.reason, payment.id)
        open_attempt = payment.in_flight_attempt_id
        if open_attempt is not None:
            # Settle the open operation from NetValve's record of exactly it first, so that
            # this event is never taken for that operation's answer.
            payment = await self._payments.reconcile(payment.id)
            if payment.in_flight is not None:
                return EventOutcome(
                    "retry", "the payment has an operation NetValve has not settled", payment.id
                )
            if await self._held_by(proven.record.transaction_id) == open_attempt:
                return EventOutcome(
                    "applied", "settled the open operation from NetValve's record", payment.id
                )
        applied = await self._apply_proven(payment.id, operation, proven.record)
        if applied.already and proven.picked_fresh:
            # Without an id, the event was read as a transaction of its order that the ledger
            # lacked; a twin event took that very one meanwhile: read the order again.
            return EventOutcome("retry", "a twin event took the same transaction", payment.id)
        if applied.extra_charge_id is not None and self._settings.netvalve_reverse_extra_charges:
            await self._extra.reverse(applied.extra_charge_id)
        return applied.outcome

    async def _held_by(self, transaction_id: int) -> uuid.UUID | None:
        async with self._sessionmaker.begin() as session:
            holder = await PaymentRepository(session).applied(transaction_id)
        return holder.id if holder is not None else None

    async def _hint(self, payment: Payment, outcome: str) -> EventOutcome:
        if payment.in_flight is None:
            return EventOutcome(
                "ignored", f"a {outcome} event moves no money and nothing is open", payment.id
            )
        before = payment.in_flight_attempt_id
        settled = await self._payments.reconcile(payment.id)
        if settled.in_flight_attempt_id != before:
            return EventOutcome(
                "applied", "the open operation was settled from NetValve's record", payment.id
            )
        return EventOutcome(
            "ignored",
            f"a {outcome} event moves no money; NetValve has not settled the open operation",
            payment.id,
        )

    # --- proof -------------------------------------------------------------------------------

    async def _prove(
        self, operation: Operation | None, data: dict[str, Any], payment: Payment
    ) -> _Proven | _Unproven | _Retry:
        """NetValve's record of the transaction the event names, if it proves the event."""
        amount = _amount(data.get("amount"))
        if amount is None:
            return _Unproven("amount", "the event carries no readable amount")
        kind = RECORD_KINDS[operation] if operation is not None else None
        transaction_id = as_int(data.get("transactionId"))
        client_order_id = _text(data.get("clientOrderId"))
        fresh = False
        if transaction_id is not None:
            found = await self._client.get_transaction(transaction_id)
            if is_not_found(found):
                return _Unproven("not_found", f"NetValve has no transaction {transaction_id}")
            record = read_record(found)
            if record is None:
                return _Retry(f"NetValve's record of {transaction_id} could not be read")
            if record.transaction_id != transaction_id:
                return _Unproven("transaction", f"NetValve's record is not {transaction_id}")
        elif client_order_id is not None:
            found = await self._client.get_order(client_order_id=client_order_id)
            if is_not_found(found):
                return _Unproven("not_found", f"NetValve has no order {client_order_id!r}")
            order = read_record(found)
            if order is None:
                return _Retry(f"NetValve's order {client_order_id!r} could not be read")
            picked = await self._pick(order, kind, amount)
            if picked is None:
                what = f"{kind} of {amount}" if kind else f"chargeback of {amount}"
                return _Unproven(
                    "order", f"NetValve's order {client_order_id!r} holds no approved {what}"
                )
            record, fresh = picked
        else:
            return _Unproven("reference", "the event names neither a transaction nor an order")
        mismatch = _mismatch(record, kind, amount, data, payment.currency)
        if mismatch is not None:
            return mismatch
        belongs = await self._belongs(record, kind, payment)
        return _Proven(belongs, fresh) if isinstance(belongs, TransactionRecord) else belongs

    async def _pick(
        self, order: TransactionRecord, kind: str | None, amount: Decimal
    ) -> tuple[TransactionRecord, bool] | None:
        """The transaction of an order an event without transactionId is about: one of its
        type and amount that the ledger does not hold yet (True), else one it holds (False)."""
        records = [order, *order.children]
        if kind == "REFUND":
            # A captured authorization's refunds hang under its capture, not the order.
            for capture in [child for child in order.children if child.kind == "CAPTURE"]:
                found = read_record(await self._client.get_transaction(capture.transaction_id))
                records += found.children if found is not None else ()
        candidates = [
            record
            for record in records
            if (
                amount in record.chargebacks
                if kind is None
                else record.kind == kind and record.approved and record.amount == amount
            )
        ]
        async with self._sessionmaker.begin() as session:
            ledger = PaymentRepository(session)
            for record in candidates:
                if kind is not None and await ledger.applied(record.transaction_id) is None:
                    return record, True
        return (candidates[0], False) if candidates else None

    async def _belongs(
        self, record: TransactionRecord, kind: str | None, payment: Payment
    ) -> TransactionRecord | _Unproven | _Retry:
        """`record` if it is this payment's transaction by NetValve's own links."""
        not_ours = _Unproven(
            "payment", f"NetValve's transaction {record.transaction_id} is not this payment's"
        )
        if kind is None:  # a chargeback disputes the payment's sale or capture, or an extra one
            ours = {payment.transaction_id, payment.settled_transaction_id} - {None}
            if record.transaction_id in ours:
                return record
            async with self._sessionmaker.begin() as session:
                extra = await ExtraChargeRepository(session).for_transaction(record.transaction_id)
            return record if extra is not None and extra.payment_id == payment.id else not_ours
        if kind in ("SALE", "AUTHORIZATION"):
            async with self._sessionmaker.begin() as session:
                attempt = await PaymentRepository(session).attempt_for_order(
                    record.client_order_id or ""
                )
            if attempt is None or attempt.payment_id != payment.id:
                return not_ours
            if RECORD_KINDS[attempt.operation] != kind or _minor(record, payment) != (
                attempt.amount_minor
            ):
                return _Unproven(
                    "attempt", f"NetValve's {kind} is not what attempt {attempt.id} sent"
                )
            return record
        parents = (
            {payment.settled_transaction_id, payment.transaction_id}
            if kind == "REFUND"
            else {payment.transaction_id}
        )
        if record.parent_id is not None and record.parent_id in parents - {None}:
            return record
        async with self._sessionmaker.begin() as session:
            extra = (
                await ExtraChargeRepository(session).for_transaction(record.parent_id)
                if record.parent_id is not None
                else None
            )
        if extra is not None and extra.payment_id == payment.id and kind in ("REFUND", "CANCEL"):
            return record
        if (
            kind == "REFUND"
            and record.parent_id is not None
            and await self._refunds_a_capture_to_come(record.parent_id, payment)
        ):
            return _Retry("the capture this refund belongs to is not in the ledger yet")
        return not_ours

    async def _refunds_a_capture_to_come(self, parent_id: int, payment: Payment) -> bool:
        """Whether `parent_id` is a capture of the payment's authorization (made at NetValve)
        that the ledger has not recorded yet: its own event is on its way."""
        if payment.transaction_id is None or payment.state is not PaymentState.AUTHORIZED:
            return False
        parent = read_record(await self._client.get_transaction(parent_id))
        return (
            parent is not None
            and parent.kind == "CAPTURE"
            and parent.approved
            and parent.parent_id == payment.transaction_id
        )

    # --- applying ----------------------------------------------------------------------------

    async def _apply_proven(
        self, payment_id: uuid.UUID, operation: Operation | None, record: TransactionRecord
    ) -> _Applied:
        """Apply a proven transaction under the payment's row lock. Nothing here answers a
        request of Medusa's (NetValve's webhook, an operator's replay, the sweep's second look),
        so a change Medusa is told of adds its notification to this same transaction."""
        async with self._sessionmaker.begin() as session:
            payment = await PaymentRepository(session).get(payment_id, for_update=True)
            if payment is None:  # pragma: no cover - payments are never deleted
                return _Applied(EventOutcome("unmatched", "the payment is gone"))
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
    ) -> _Applied:
        ledger = PaymentRepository(session)
        if payment.in_flight is not None:
            return _Applied(
                EventOutcome("retry", "another operation started on the payment", payment.id)
            )
        extras = ExtraChargeRepository(session)
        if operation is None:
            disputed = await extras.for_transaction(record.transaction_id)
            if disputed is not None:  # the cardholder's bank took an extra charge back
                return _Applied(_charged_back_extra(payment, disputed, record))
            return _Applied(self._apply_chargeback(payment, record))
        if await ledger.applied(record.transaction_id) is not None:
            return _Applied(
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
            return _Applied(_reversed_outside(ledger, payment, extra, operation, record))
        return _Applied(self._apply_child(ledger, payment, operation, record))

    async def _apply_root(
        self, session: AsyncSession, payment: Payment, record: TransactionRecord
    ) -> _Applied:
        """A sale or authorization of one of our attempts that the ledger does not hold: the
        payment's charge if it has none, else an extra charge."""
        ledger = PaymentRepository(session)
        attempt = await ledger.attempt_for_order(record.client_order_id or "")
        if attempt is None:  # pragma: no cover - proven by _belongs moments ago
            return _Applied(EventOutcome("ignored", "the attempt is gone", payment.id))
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
            return _Applied(
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
        return _Applied(outcome, charge.id)

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

    @staticmethod
    def _apply_chargeback(payment: Payment, record: TransactionRecord) -> EventOutcome:
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

    # --- the sweep's second look -------------------------------------------------------------

    async def recheck_not_found(self, limit: int = 20) -> int:
        """Look once more at sales NetValve did not find within the grace: one a slow acquirer
        processed later is money held, and is applied like its approved event would be."""
        before = _now() - timedelta(seconds=self._settings.reconcile_recheck_not_found_seconds)
        async with self._sessionmaker.begin() as session:
            attempts = await PaymentRepository(session).not_found_to_recheck(before, limit)
        found = 0
        for attempt in attempts:
            if await self._recheck(attempt):
                found += 1
        return found

    async def _recheck(self, attempt: PaymentAttempt) -> bool:
        lookup = await self._client.get_order(client_order_id=attempt.client_order_id or "")
        record = read_record(lookup)
        if record is None and not is_not_found(lookup):
            return False  # no answer: the next sweep asks again
        async with self._sessionmaker.begin() as session:
            payment = await PaymentRepository(session).get(attempt.payment_id)
        applied = False
        if payment is not None and record is not None and record.approved:
            if root_mismatch(record, attempt, payment.currency) is None:
                outcome = await self._apply_proven(payment.id, attempt.operation, record)
                if outcome.outcome.result == "retry":
                    return False
                applied = outcome.outcome.result == "applied"
                if outcome.extra_charge_id and self._settings.netvalve_reverse_extra_charges:
                    await self._extra.reverse(outcome.extra_charge_id)
        async with self._sessionmaker.begin() as session:
            current = await PaymentRepository(session).attempt(attempt.id)
            if current is not None and current.reason == attempt.reason:
                current.reason = NOT_FOUND_RECHECKED
        return applied


# --- helpers -----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


def _amount(value: object) -> Decimal | None:
    amount = as_decimal(value)
    return amount if amount is not None and amount > 0 else None


def _minor(record: TransactionRecord, payment: Payment) -> int | None:
    return minor_of(record.amount, payment.currency) if record.amount is not None else None


def _mismatch(
    record: TransactionRecord,
    kind: str | None,
    amount: Decimal,
    data: dict[str, Any],
    currency: str,
) -> _Unproven | None:
    """What in NetValve's record contradicts the event, or the payment; None if nothing."""
    tid = record.transaction_id
    if kind is None:
        if record.kind not in ("SALE", "CAPTURE"):
            return _Unproven("type", f"NetValve's {tid} is a {record.kind}: nothing to dispute")
        if amount not in record.chargebacks:
            return _Unproven("chargeback", f"NetValve's {tid} has no chargeback of {amount}")
    else:
        if record.kind != kind:
            return _Unproven("type", f"NetValve's {tid} is a {record.kind}, not a {kind}")
        if not record.approved:
            return _Unproven("status", f"NetValve's {tid} is {record.outcome}, not approved")
        if record.amount != amount:
            return _Unproven(
                "amount", f"NetValve's {tid} is for {record.amount}, the event says {amount}"
            )
    event_currency = _text(data.get("currency"))
    if record.currency != currency:
        return _Unproven("currency", f"NetValve's {tid} is in {record.currency}, not {currency}")
    if event_currency and event_currency.upper() != currency:
        return _Unproven(
            "currency", f"the event says {event_currency}, NetValve's {tid} {currency}"
        )
    if record.amount is None or minor_of(record.amount, currency) is None:
        return _Unproven("amount", f"NetValve's {tid} has no amount in {currency}")
    named = _text(data.get("clientOrderId"))
    if named and record.client_order_id and named != record.client_order_id:
        return _Unproven(
            "order",
            f"the event's clientOrderId {named!r} is not NetValve's {record.client_order_id!r}",
        )
    return None


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


def _charged_back_extra(
    payment: Payment, charge: ExtraCharge, record: TransactionRecord
) -> EventOutcome:
    """The bank took the extra charge back: no longer held, and never to be refunded too."""
    if charge.status is ExtraChargeStatus.REVERSED:
        return EventOutcome("ignored", "the extra charge is reversed already", payment.id)
    give_back(payment, charge, charge.amount_minor, None)
    charge.detail = f"charged back by the cardholder's bank ({max(record.chargebacks)})"
    return EventOutcome("applied", "a chargeback of an extra charge", payment.id)
