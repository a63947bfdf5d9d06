"""Extra charges: money NetValve holds for a payment beyond the payment's own charge, and
giving it back (a void or a full refund at NetValve), by an operator or automatically.

Reversing is safe to repeat: NetValve takes one full refund or one void of a transaction and
answers "already" to the next, which is checked against its record. A reversal cut short (its
process died mid-call) is taken over once REVERSAL_LEASE has passed.
"""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.netvalve import Approved, Declined, NetvalveClient, TransactionRecord, read_record
from app.core import metrics
from app.core.config import Settings
from app.core.errors import AppError
from app.models.extra_charge import ExtraCharge, ExtraChargeStatus
from app.models.payment import Operation, Payment
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.repositories.extra_charge_repository import ExtraChargeRepository
from app.repositories.payment_repository import PaymentRepository

log = structlog.get_logger(__name__)

_REVERSIBLE = (ExtraChargeStatus.OPEN, ExtraChargeStatus.REVERSE_FAILED)
# A reversal still `reversing` after this was cut short (its process died): it is taken over.
REVERSAL_LEASE = timedelta(minutes=2)
_ALREADY_REVERSED = {"GTW_2045", "GTW_2047"}


class ExtraChargeNotFound(AppError):
    """No extra charge has that id."""

    status_code = 404
    message = "No extra charge has that id."


class ExtraChargeService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: NetvalveClient,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._client = client
        self._settings = settings

    async def reverse(self, charge_id: uuid.UUID) -> ExtraCharge:
        """Void (an authorization) or fully refund (a sale) an extra charge at NetValve. Safe to
        repeat: NetValve takes one full refund or one void of a transaction, then answers
        "already", which is checked against its record."""
        async with self._sessionmaker.begin() as session:
            repository = ExtraChargeRepository(session)
            charge = await repository.claim_for_reversal(
                charge_id, _REVERSIBLE, _now() - REVERSAL_LEASE
            )
            if charge is None:
                current = await repository.get(charge_id)
                if current is None:
                    raise ExtraChargeNotFound
                return current
        if charge.operation is Operation.AUTHORIZE:
            result = await self._client.cancel(charge.transaction_id)
        else:
            result = await self._client.refund(charge.transaction_id)
        reversed_by: int | None = None
        if isinstance(result, Approved):
            done, reversed_by = True, result.transaction_id
        elif isinstance(result, Declined) and result.response_code in _ALREADY_REVERSED:
            record = read_record(await self._client.get_transaction(charge.transaction_id))
            done = record is not None and _record_reversed(record)
        else:
            done = False
        return await self._finish_reversal(charge.id, done, reversed_by, result)

    async def _finish_reversal(
        self, charge_id: uuid.UUID, done: bool, reversed_by: int | None, result: object
    ) -> ExtraCharge:
        async with self._sessionmaker.begin() as session:
            charges, ledger = ExtraChargeRepository(session), PaymentRepository(session)
            found = await charges.get(charge_id)
            if found is None:  # pragma: no cover - extra charges are never deleted
                raise ExtraChargeNotFound
            # The payment's lock first, then the charge as it is now: the webhook of this very
            # void or refund may have marked it reversed meanwhile (under the same lock).
            payment = await ledger.get(found.payment_id, for_update=True)
            charge = await charges.get(charge_id)
            if charge is None or charge.status is not ExtraChargeStatus.REVERSING:
                return found if charge is None else charge
            if done and payment is not None:
                left = charge.amount_minor - charge.reversed_minor
                if reversed_by is not None and await ledger.applied(reversed_by) is None:
                    operation = (
                        Operation.CANCEL
                        if charge.operation is Operation.AUTHORIZE
                        else Operation.REFUND
                    )
                    ledger.add_attempt(
                        PaymentAttempt(
                            id=uuid.uuid4(),
                            payment_id=payment.id,
                            operation=operation,
                            amount_minor=left,
                            outcome=AttemptOutcome.APPROVED,
                            transaction_id=reversed_by,
                            reason="extra_charge_reversal",
                            resolved_at=_now(),
                        )
                    )
                charge.status = ExtraChargeStatus.REVERSING  # _give_back marks it reversed
                give_back(payment, charge, left, reversed_by)
                charge.detail = "reversed at NetValve"
            else:
                charge.status = ExtraChargeStatus.REVERSE_FAILED
                charge.detail = f"the reversal was not confirmed: {_describe(result)}"
                metrics.EXTRA_CHARGES.labels("reverse_failed").inc()
            await session.flush()
        log.warning(
            "payment.extra_charge_reversal",
            charge_id=str(charge_id),
            status=charge.status.value,
        )
        return charge

    async def search(
        self, *, status: ExtraChargeStatus | None, payment_id: uuid.UUID | None, limit: int
    ) -> list[ExtraCharge]:
        async with self._sessionmaker.begin() as session:
            return await ExtraChargeRepository(session).search(
                status=status, payment_id=payment_id, limit=limit
            )

    async def resume_reversals(self, limit: int = 20) -> int:
        """Reversals cut short (their process died mid-call), and, when
        NETVALVE_REVERSE_EXTRA_CHARGES is on, extra charges not reversed yet: reversed now."""
        async with self._sessionmaker.begin() as session:
            due = await ExtraChargeRepository(session).to_resume(
                _now() - REVERSAL_LEASE,
                open_too=self._settings.netvalve_reverse_extra_charges,
                limit=limit,
            )
        for charge_id in due:
            await self.reverse(charge_id)
        return len(due)


def _now() -> datetime:
    return datetime.now(UTC)


def give_back(
    payment: Payment, charge: ExtraCharge, amount: int, transaction_id: int | None
) -> None:
    """`amount` of the extra charge is no longer held: the payment's total follows."""
    given = min(amount, charge.amount_minor - charge.reversed_minor)
    charge.reversed_minor += given
    payment.extra_charged_minor -= given
    if charge.reversed_minor >= charge.amount_minor and (
        charge.status is not ExtraChargeStatus.REVERSED
    ):
        charge.status = ExtraChargeStatus.REVERSED
        charge.reversal_transaction_id = charge.reversal_transaction_id or transaction_id
        charge.reversed_at = _now()
        metrics.EXTRA_CHARGES.labels("reversed").inc()


def _record_reversed(record: TransactionRecord) -> bool:
    refunds = sum(
        (child.amount or Decimal(0))
        for child in record.children
        if child.kind == "REFUND" and child.approved
    )
    cancelled = any(child.kind == "CANCEL" and child.approved for child in record.children)
    return cancelled or (record.amount is not None and refunds >= record.amount)


def _describe(result: object) -> str:
    code = getattr(result, "response_code", None)
    reason = getattr(result, "reason", None)
    return f"{type(result).__name__}{f' {code}' if code else ''}{f' ({reason})' if reason else ''}"
