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

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.netvalve import (
    NetvalveClient,
    TransactionRecord,
    is_not_found,
    read_record,
)
from app.core import metrics
from app.core.config import Settings
from app.db.session import transaction
from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import PaymentAttempt
from app.repositories.extra_charge_repository import ExtraChargeRepository
from app.repositories.payment_repository import NOT_FOUND_RECHECKED, PaymentRepository
from app.services.netvalve.extra_charges import ExtraChargeService
from app.services.netvalve.proof import RECORD_KINDS, minor_of, root_mismatch
from app.services.netvalve.proven import ProvenTransactions
from app.services.netvalve.reconciliation import Reconciler
from app.services.netvalve.results import EventOutcome

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EventData:
    """What an event says about its transaction, read from its JSON by the intake: `amount` is
    None unless positive; the ids are None when absent or empty."""

    transaction_id: int | None
    client_order_id: str | None
    amount: Decimal | None
    currency: str | None


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


class GatewayEventService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: NetvalveClient,
        reconciler: Reconciler,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._client = client
        self._reconciler = reconciler
        self._settings = settings
        self._extra = ExtraChargeService(sessionmaker, client, settings)
        self._proven = ProvenTransactions(sessionmaker, settings)

    async def apply(
        self, operation: Operation | None, outcome: str, event: EventData
    ) -> EventOutcome:
        """Apply one event's news: `operation` None with outcome `chargeback` is a dispute."""
        async with transaction(self._sessionmaker) as session:
            payment = await PaymentRepository(session).find_for_event(
                event.client_order_id, event.transaction_id
            )
        if payment is None:
            return EventOutcome("unmatched", "no payment matches yet")
        if outcome in ("failed", "pending"):
            return await self._hint(payment, outcome)
        proven = await self._prove(operation, event, payment)
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
            payment = await self._reconciler.reconcile(payment.id)
            if payment.in_flight is not None:
                return EventOutcome(
                    "retry", "the payment has an operation NetValve has not settled", payment.id
                )
            if await self._held_by(proven.record.transaction_id) == open_attempt:
                return EventOutcome(
                    "applied", "settled the open operation from NetValve's record", payment.id
                )
        applied = await self._proven.apply(payment.id, operation, proven.record)
        if applied.already and proven.picked_fresh:
            # Without an id, the event was read as a transaction of its order that the ledger
            # lacked; a twin event took that very one meanwhile: read the order again.
            return EventOutcome("retry", "a twin event took the same transaction", payment.id)
        if applied.extra_charge_id is not None and self._settings.netvalve_reverse_extra_charges:
            await self._extra.reverse(applied.extra_charge_id)
        return applied.outcome

    async def _held_by(self, transaction_id: int) -> uuid.UUID | None:
        async with transaction(self._sessionmaker) as session:
            holder = await PaymentRepository(session).applied(transaction_id)
        return holder.id if holder is not None else None

    async def _hint(self, payment: Payment, outcome: str) -> EventOutcome:
        if payment.in_flight is None:
            return EventOutcome(
                "ignored", f"a {outcome} event moves no money and nothing is open", payment.id
            )
        before = payment.in_flight_attempt_id
        settled = await self._reconciler.reconcile(payment.id)
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
        self, operation: Operation | None, event: EventData, payment: Payment
    ) -> _Proven | _Unproven | _Retry:
        """NetValve's record of the transaction the event names, if it proves the event."""
        amount = event.amount
        if amount is None:
            return _Unproven("amount", "the event carries no readable amount")
        kind = RECORD_KINDS[operation] if operation is not None else None
        transaction_id, client_order_id = event.transaction_id, event.client_order_id
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
        mismatch = _mismatch(record, kind, amount, event, payment.currency)
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
        async with transaction(self._sessionmaker) as session:
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
            async with transaction(self._sessionmaker) as session:
                extra = await ExtraChargeRepository(session).for_transaction(record.transaction_id)
            return record if extra is not None and extra.payment_id == payment.id else not_ours
        if kind in ("SALE", "AUTHORIZATION"):
            async with transaction(self._sessionmaker) as session:
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
        async with transaction(self._sessionmaker) as session:
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

    # --- the sweep's second look -------------------------------------------------------------

    async def recheck_not_found(self, limit: int = 20) -> int:
        """Look once more at sales NetValve did not find within the grace: one a slow acquirer
        processed later is money held, and is applied like its approved event would be."""
        before = _now() - timedelta(seconds=self._settings.reconcile_recheck_not_found_seconds)
        async with transaction(self._sessionmaker) as session:
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
        async with transaction(self._sessionmaker) as session:
            payment = await PaymentRepository(session).get(attempt.payment_id)
        applied = False
        if payment is not None and record is not None and record.approved:
            if root_mismatch(record, attempt, payment.currency) is None:
                outcome = await self._proven.apply(payment.id, attempt.operation, record)
                if outcome.outcome.result == "retry":
                    return False
                applied = outcome.outcome.result == "applied"
                if outcome.extra_charge_id and self._settings.netvalve_reverse_extra_charges:
                    await self._extra.reverse(outcome.extra_charge_id)
        async with transaction(self._sessionmaker) as session:
            current = await PaymentRepository(session).attempt(attempt.id)
            if current is not None and current.reason == attempt.reason:
                current.reason = NOT_FOUND_RECHECKED
        return applied


# --- helpers -----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _minor(record: TransactionRecord, payment: Payment) -> int | None:
    return minor_of(record.amount, payment.currency) if record.amount is not None else None


def _mismatch(
    record: TransactionRecord,
    kind: str | None,
    amount: Decimal,
    event: EventData,
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
    event_currency = event.currency
    if record.currency != currency:
        return _Unproven("currency", f"NetValve's {tid} is in {record.currency}, not {currency}")
    if event_currency and event_currency.upper() != currency:
        return _Unproven(
            "currency", f"the event says {event_currency}, NetValve's {tid} {currency}"
        )
    if record.amount is None or minor_of(record.amount, currency) is None:
        return _Unproven("amount", f"NetValve's {tid} has no amount in {currency}")
    named = event.client_order_id
    if named and record.client_order_id and named != record.client_order_id:
        return _Unproven(
            "order",
            f"the event's clientOrderId {named!r} is not NetValve's {record.client_order_id!r}",
        )
    return None
