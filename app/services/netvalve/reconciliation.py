"""Settling operations whose outcome is unknown or pending, from NetValve's own records.

Unknown outcomes are never resent: a sale is settled through `/order?clientOrderId=` (our stable
reference) or `/inquiry`; a capture, refund or cancel through the parent's `/transaction` record.
The sweep finds what is due among unresolved operations, safely with several sweepers.
"""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from app.clients.netvalve import (
    Approved,
    NetvalveClient,
    TransactionRecord,
    is_not_found,
    read_record,
)
from app.core import metrics
from app.core.config import Settings
from app.db.errors import is_database_down
from app.models.payment import Operation, Payment
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.repositories.payment_repository import RECONCILE_LEASE
from app.services.netvalve.errors import PaymentNotFound
from app.services.netvalve.ledger import Ledger, present
from app.services.netvalve.proof import (
    RECORD_KINDS,
    ROOT_OPERATIONS,
    minor_of,
    root_mismatch,
)
from app.services.netvalve.settlement import Settlement, settlement_of_record

log = structlog.get_logger(__name__)

# Attempts that NetValve cannot find are only called failed after this long (by default; the
# setting is NETVALVE_NOT_FOUND_GRACE_SECONDS): right after a timeout the request may still be on
# its way through NetValve. A sale it processes later is not lost: see GatewayEventService.
NOT_FOUND_GRACE = timedelta(
    seconds=Settings.model_fields["netvalve_not_found_grace_seconds"].default
)


def _now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(self, ledger: Ledger, client: NetvalveClient, settings: Settings) -> None:
        self._ledger = ledger
        self._client = client
        self._settings = settings

    async def within_budget(self, payment_id: uuid.UUID) -> Payment:
        budget = self._settings.unknown_outcome_budget_seconds
        if budget <= 0:
            async with self._ledger.open() as ledger:
                return present(await ledger.get(payment_id))
        deadline = time.monotonic() + budget
        delay = 0.1
        # Notified although the request that asked answers too: each look at NetValve's records
        # may take the client's whole timeout, so this answer can come after the caller (the
        # Medusa provider) gave up, and a sale settled unseen would leave its cart without an
        # order. A notification too many is harmless: the provider re-reads GET /status, and
        # Medusa's state checks make an applied outcome a no-op.
        payment = await self.reconcile(payment_id)
        while payment.in_flight is not None and time.monotonic() + delay < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            payment = await self.reconcile(payment_id)
        return payment

    async def reconcile(
        self, payment_id: uuid.UUID, *, settle_missing: bool = False, notify_medusa: bool = True
    ) -> Payment:
        """Settle the payment's unresolved operation from NetValve's own records.

        NetValve's "not found" only counts as failure after its grace, or at once with
        `settle_missing` (NetValve answered, just not with this operation).

        `notify_medusa`: whether a change this makes is one Medusa must be told of. True unless
        the caller is the request Medusa made for this very operation (its answer tells Medusa),
        so that a background caller that forgets to say is on the safe side: a notification
        too many is harmless (the provider re-reads GET /status), one too few leaves a cart
        without its order.
        """
        payment, _ = await self._reconcile(
            payment_id, settle_missing=settle_missing, notify_medusa=notify_medusa
        )
        return payment

    async def _reconcile(
        self,
        payment_id: uuid.UUID,
        *,
        settle_missing: bool = False,
        confirm_idle: bool = True,
        notify_medusa: bool = True,
    ) -> tuple[Payment, bool]:
        """The payment, and whether this call settled its operation. With `confirm_idle`, a
        payment with nothing in flight is checked against NetValve's inquiry."""
        async with self._ledger.open() as ledger:
            payment = await ledger.get(payment_id)
            attempt = (
                await ledger.attempt(payment.in_flight_attempt_id)
                if payment is not None and payment.in_flight_attempt_id
                else None
            )
        if payment is None:
            raise PaymentNotFound
        if attempt is None:
            if confirm_idle and payment.transaction_id is not None and payment.in_flight is None:
                return await self._confirm_with_inquiry(payment), False
            return payment, False
        settlement = await self._evidence(payment, attempt, settle_missing=settle_missing)
        if settlement is None:
            return payment, False
        payment, applied = await self._ledger.apply(
            payment.id, attempt.id, settlement, notify_medusa=notify_medusa
        )
        return payment, applied and payment.in_flight is None

    async def _evidence(
        self, payment: Payment, attempt: PaymentAttempt, *, settle_missing: bool
    ) -> Settlement | None:
        """What NetValve's records say about `attempt`; None if they do not tell yet."""
        grace = timedelta(seconds=self._settings.netvalve_not_found_grace_seconds)
        old_enough = settle_missing or _now() - attempt.created_at >= grace
        if attempt.operation in ROOT_OPERATIONS:
            return await self._root_evidence(payment, attempt, old_enough=old_enough)
        parent_id = (
            payment.settled_transaction_id
            if attempt.operation is Operation.REFUND
            else payment.transaction_id
        )
        if parent_id is None:
            return None
        record = read_record(await self._client.get_transaction(parent_id))
        if record is None:
            return None
        done = _child_done(record, attempt, payment)
        if done is not None:
            return done
        return _not_found() if old_enough else None

    async def _root_evidence(
        self, payment: Payment, attempt: PaymentAttempt, *, old_enough: bool
    ) -> Settlement | None:
        """The sale or authorization `attempt` sent, from NetValve's record of exactly it: by
        the transaction id NetValve gave this attempt, else by the attempt's own clientOrderId.
        A record that is not this attempt's (another type, order, amount or currency) settles
        nothing."""
        if attempt.transaction_id is not None:
            found = await self._client.get_transaction(attempt.transaction_id)
        elif attempt.client_order_id is not None:
            found = await self._client.get_order(client_order_id=attempt.client_order_id)
        else:
            # Opened by an earlier version for a webhook, never sent: nothing to wait for.
            return _not_found()
        if is_not_found(found):
            return _not_found() if old_enough else None
        record = read_record(found)
        if record is None:
            return None
        mismatch = root_mismatch(record, attempt, payment.currency)
        if mismatch is not None:
            # NetValve holds something else under our reference: the attempt stays open (it is
            # not proven either way), loudly, for a person to compare with NetValve's portal.
            metrics.RECONCILE_FAILURES.inc()
            log.error(
                "reconcile.record_mismatch",
                payment_id=str(payment.id),
                attempt_id=str(attempt.id),
                mismatch=mismatch,
            )
            return None
        return settlement_of_record(record)

    async def _confirm_with_inquiry(self, payment: Payment) -> Payment:
        """Nothing in flight: record what NetValve's inquiry says, without moving the state."""
        answer = await self._client.inquiry(present(payment.transaction_id))
        log.info(
            "payment.confirmed",
            payment_id=str(payment.id),
            outcome=type(answer).__name__,
            gateway_status=answer.status if isinstance(answer, Approved) else None,
        )
        return payment

    async def sweep_once(self, limit: int = 50, stop: asyncio.Event | None = None) -> int:
        """Settle what is due among unresolved operations; safe with several sweepers.

        When `stop` is set, the sweep ends after the payment in hand and hands the rest of its
        claim back, so that another sweeper takes them at once instead of after the lease."""
        now = _now()
        async with self._ledger.open() as ledger:
            due = await ledger.due_for_reconcile(
                now, timedelta(seconds=self._settings.reconcile_min_age_seconds), limit
            )
        changed = 0
        for index, payment_id in enumerate(due):
            if stop is not None and stop.is_set():
                async with self._ledger.open() as ledger:
                    await ledger.release_reconcile(due[index:], now + RECONCILE_LEASE)
                break
            try:
                # Settled since the claim (by its own request or a webhook): nothing to confirm.
                payment, settled = await self._reconcile(
                    payment_id, confirm_idle=False, notify_medusa=True
                )
            except Exception as error:
                if is_database_down(error):
                    raise
                # Backed off like any other try (not every minute), and counted: the payment
                # stays visible as unsettled in the metrics until someone looks.
                log.exception("reconcile.failed", payment_id=str(payment_id))
                metrics.RECONCILE_FAILURES.inc()
                async with self._ledger.open() as ledger:
                    failed = await ledger.get(payment_id)
                if failed is not None:
                    await self._back_off(failed)
                continue
            if settled:
                changed += 1
                log.info("reconcile.settled", payment_id=str(payment_id), state=payment.state.value)
            elif payment.in_flight is not None:
                await self._back_off(payment)
        return changed

    async def _back_off(self, payment: Payment) -> None:
        delay = min(
            self._settings.reconcile_interval_seconds * 2 ** max(payment.reconcile_tries - 1, 0),
            self._settings.reconcile_max_backoff_seconds,
        )
        async with self._ledger.open() as ledger:
            current = await ledger.get(payment.id, for_update=True)
            if current is not None and current.in_flight is not None:
                current.next_reconcile_at = _now() + timedelta(seconds=delay)


def _not_found() -> Settlement:
    return Settlement(
        outcome=AttemptOutcome.DECLINED,
        http_status=404,
        response_code="GTW_2103",
        response_message="NetValve has no record of this request: it was not processed.",
        not_found=True,
    )


def _child_done(
    record: TransactionRecord, attempt: PaymentAttempt, payment: Payment
) -> Settlement | None:
    """Approved if NetValve's record of the parent shows `attempt`'s operation as done: an
    approved child of its type (a declined capture or refund is no capture or refund)."""

    def approved(transaction_id: int | None, **totals: Any) -> Settlement:
        return Settlement(
            outcome=AttemptOutcome.APPROVED,
            transaction_id=transaction_id,
            response_code="GTW_1000",
            response_message="Settled from NetValve's transaction record.",
            http_status=200,
            **totals,
        )

    def minor(child: TransactionRecord) -> int:
        return minor_of(child.amount or Decimal(0), payment.currency) or 0

    kind = RECORD_KINDS[attempt.operation]
    matching = [child for child in record.children if child.kind == kind and child.approved]
    if attempt.operation is Operation.CANCEL:
        cancelled = (record.status or "").lower() == "cancelled"
        if not matching and not cancelled:
            return None
        return approved(matching[-1].transaction_id if matching else None)
    if attempt.operation is Operation.CAPTURE:
        if not matching:
            return None
        return approved(matching[-1].transaction_id, captured_minor=minor(matching[-1]))
    refunded = sum(minor(child) for child in matching)
    if refunded >= payment.refunded_minor + (attempt.amount_minor or 0):
        absorbed = tuple((child.transaction_id, minor(child)) for child in matching)
        return approved(None, refunded_minor=refunded, absorbed_refunds=absorbed)
    return None
