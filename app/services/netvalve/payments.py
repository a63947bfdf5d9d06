"""The routes' use cases: pay, capture, refund, cancel and status.

Each money operation runs in two short phases (Brandur Leach's "atomic phases", see
`app.db.session.Phases`): (1) claim the payment with a conditional UPDATE and record the attempt,
committed with the caller's Idempotency-Key claim; (2) call NetValve with no transaction open;
(3) lock the payment row and apply the answer, committed with the caller's stored answer. A
payment whose `in_flight` operation is set admits no other operation, so two requests can never
both move money for it, and a crash between phases leaves a marked attempt for the sweep.
"""

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import structlog

from app.clients.netvalve import (
    NetvalveClient,
    NetvalveResult,
    Unavailable,
)
from app.clients.netvalve import PaymentRequest as GatewayPayment
from app.core.config import CaptureMode, Settings
from app.core.money import exponent, from_minor_units, quantize, to_minor_units
from app.db.errors import is_database_down
from app.db.session import Phases
from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.repositories.hpf_session_repository import HpfSessionRepository
from app.repositories.payment_repository import PaymentRepository
from app.schemas.netvalve import CancelRequest, CaptureRequest, RefundRequest, StatusQuery
from app.schemas.payment import PaymentRequest
from app.services.netvalve.errors import (
    InvalidAmount,
    NetvalveError,
    PaymentInProgress,
    PaymentNotFound,
    PaymentStateConflict,
)
from app.services.netvalve.ledger import Ledger, present
from app.services.netvalve.medusa import MedusaCheckout, customer
from app.services.netvalve.outcomes import outcome_of
from app.services.netvalve.reconciliation import Reconciler
from app.services.netvalve.results import CAPTURED_STATES, PAID_STATES, PaymentResult, to_response
from app.services.netvalve.settlement import Settlement, settlement_of

log = structlog.get_logger(__name__)

UNAVAILABLE_RETRY_DELAYS = (0.2, 0.5)


class AmountMismatch(NetvalveError):
    """The request's amount differs from Medusa's payment session."""

    status_code = 422


class CaptureExceedsAuthorized(NetvalveError):
    """The capture is more than the authorized amount not yet captured."""

    status_code = 422


class RefundExceedsCaptured(NetvalveError):
    """The refund is more than the captured amount not yet refunded."""

    status_code = 422


def _now() -> datetime:
    return datetime.now(UTC)


def positive_amount(amount: str) -> Decimal:
    """A requested amount, refused unless ASCII digits (`Decimal()` reads any Unicode digit)
    and above zero."""
    try:
        value = Decimal(amount) if amount.isascii() else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise InvalidAmount("The amount is not a decimal number of ASCII digits.")
    if value <= 0:
        raise InvalidAmount("The amount must be positive.")
    return value


class Payments:
    def __init__(
        self,
        ledger: Ledger,
        reconciler: Reconciler,
        checkout: MedusaCheckout,
        client: NetvalveClient,
        settings: Settings,
    ) -> None:
        self._ledger = ledger
        self._reconciler = reconciler
        self._checkout = checkout
        self._client = client
        self._settings = settings

    async def pay(
        self,
        request: PaymentRequest,
        *,
        request_key: str | None = None,
        phases: Phases | None = None,
    ) -> PaymentResult:
        phases = phases or self._ledger.phases()
        session = await self._checkout.session(request.payment_session_id, request.cart_id)
        cart = await self._checkout.cart(session)
        async with phases.phase() as db:
            ledger = PaymentRepository(db)
            replayed = await self._checkout.payable(session, cart, ledger, request_key=request_key)
            if replayed is not None:
                return replayed
            currency, amount = self._checkout.charge(session)
            if request.amount is not None and Decimal(request.amount) != amount:
                raise AmountMismatch(
                    f"The amount {request.amount} differs from the payment session's "
                    f"{amount} {currency}."
                )
            operation = (
                Operation.SALE
                if self._settings.netvalve_capture_mode is CaptureMode.SALE
                else Operation.AUTHORIZE
            )
            amount_minor = to_minor_units(amount, currency)
            payment = await ledger.ensure(
                {
                    "payment_session_id": session.id,
                    "payment_collection_id": session.payment_collection_id,
                    "cart_id": session.cart_id,
                    "currency": currency,
                    "amount_minor": amount_minor,
                    "medusa_amount": session.amount,
                    "mode": self._settings.netvalve_capture_mode.value,
                }
            )
            claimed = await ledger.claim(
                payment.id, operation, {PaymentState.REQUIRES_PAYMENT}, attempt_id=uuid.uuid4()
            )
            if claimed is None:
                # Lost a race (the checks above passed): the row as the winner left it decides.
                current = present(await ledger.get(payment.id))
                return await self._already(current, ledger, request_key)
            if claimed.amount_minor != amount_minor:
                log.info("payment.amount_changed", payment_id=str(payment.id))
                claimed.amount_minor, claimed.medusa_amount = amount_minor, session.amount
            attempt = PaymentAttempt(
                id=present(claimed.in_flight_attempt_id),
                payment_id=payment.id,
                operation=operation,
                client_order_id=f"{payment.id.hex}-{claimed.attempts_count}",
                amount_minor=amount_minor,
                request_key=request_key,
            )
            ledger.add_attempt(attempt)
            # The token is spent from the moment it may reach NetValve (NetValve uses it up on
            # any processed payment, approved or declined): no GET /hpf/session hands it out
            # again. Done in the claim's transaction, so a GET that reads the HPF session after
            # this commit sees it spent, and one that read it before sees the payment in flight.
            await HpfSessionRepository(db).spend(request.payment_token, _now())
        gateway_request = GatewayPayment(
            amount=amount,
            currency=currency,
            client_order_id=str(attempt.client_order_id),
            payment_token=request.payment_token,
            customer=customer(cart, request.customer_ip),
        )
        settlement = settlement_of(await self._send_payment(operation, gateway_request))
        payment = await self._apply(payment.id, attempt.id, settlement, phases)
        if payment.in_flight is not None:
            payment = await self._reconciler.within_budget(payment.id)
            settlement = await self._settled_answer(payment, attempt.id, settlement)
        return outcome_of(payment, settlement)

    async def _send_payment(self, operation: Operation, request: GatewayPayment) -> NetvalveResult:
        send = self._client.sale if operation is Operation.SALE else self._client.authorize
        result = await send(request)
        for delay in UNAVAILABLE_RETRY_DELAYS:
            # Only a request that provably never left may be sent again.
            if not isinstance(result, Unavailable):
                break
            await asyncio.sleep(delay)
            result = await send(request)
        return result

    async def _already(
        self, payment: Payment, ledger: PaymentRepository, request_key: str | None
    ) -> PaymentResult:
        if payment.in_flight is not None:
            raise PaymentInProgress
        if payment.state in PAID_STATES:
            return await self._checkout.paid_again(payment, ledger, request_key)
        raise PaymentStateConflict(f"The payment is {payment.state.value}; it cannot be paid.")

    # --- capture, refund, cancel -------------------------------------------------------------

    async def capture(self, request: CaptureRequest, phases: Phases | None = None) -> PaymentResult:
        if request.amount is not None:
            positive_amount(request.amount)  # before any lookup: a zero is not "nothing left"
        phases = phases or self._ledger.phases()
        async with phases.phase() as db:
            ledger = PaymentRepository(db)
            payment = await self._find(ledger, request.payment_id, request.transaction_id)
            remaining = payment.authorized_minor - payment.captured_minor
            amount_minor = self._requested(request.amount, payment.currency, default=remaining)
            claimed = await ledger.claim(
                payment.id,
                Operation.CAPTURE,
                {PaymentState.AUTHORIZED},
                attempt_id=uuid.uuid4(),
                extra_condition=Payment.authorized_minor - Payment.captured_minor >= amount_minor,
            )
            if claimed is None:
                current = present(await ledger.get(payment.id))
                if current.state in CAPTURED_STATES and current.captured_minor == amount_minor:
                    return PaymentResult(to_response(current))  # already captured, same amount
                self._refuse(current, PaymentState.AUTHORIZED, "captured")
                left = current.authorized_minor - current.captured_minor
                if left >= amount_minor:
                    raise PaymentInProgress  # lost to an operation that has ended since
                raise CaptureExceedsAuthorized(
                    f"At most {from_minor_units(left, current.currency)} "
                    f"{current.currency} can be captured."
                )
            attempt = self._new_attempt(
                claimed, Operation.CAPTURE, amount_minor, final_capture=amount_minor < remaining
            )
            ledger.add_attempt(attempt)
        answer = await self._client.capture(
            present(claimed.transaction_id),
            from_minor_units(amount_minor, claimed.currency),
            final_capture=bool(attempt.final_capture),
        )
        return await self._finish(claimed.id, attempt.id, settlement_of(answer), phases)

    async def refund(
        self,
        request: RefundRequest,
        *,
        request_key: str | None = None,
        phases: Phases | None = None,
    ) -> PaymentResult:
        if request.amount is not None:
            positive_amount(request.amount)  # before any lookup: a zero is not "nothing left"
        phases = phases or self._ledger.phases()
        async with phases.phase() as db:
            ledger = PaymentRepository(db)
            payment = await self._find(ledger, request.payment_id, request.transaction_id)
            # A partial refund can be repeated, so the ledger's state cannot tell a retry from
            # a second refund: the request key can. A retry resumes its own attempt.
            earlier = await self._earlier(ledger, payment.id, Operation.REFUND, request_key)
            if earlier is not None and earlier.resolved_at is not None:
                return PaymentResult(to_response(payment))  # approved: the retry's answer
            claim = None
            if earlier is None:
                claim = await self._claim_refund(ledger, payment, request, request_key)
        if earlier is not None:
            # Sent before and not settled yet: settled now, with no transaction open.
            resumed = await self._resume(payment.id, earlier.id)
            if resumed is not None:
                return resumed
            async with phases.phase() as db:  # it never reached NetValve: a new attempt may go
                ledger = PaymentRepository(db)
                payment = present(await ledger.get(payment.id))
                claim = await self._claim_refund(ledger, payment, request, request_key)
        claimed, attempt = present(claim)
        if attempt is None:
            return PaymentResult(to_response(claimed))  # already fully refunded
        answer = await self._client.refund(
            present(claimed.settled_transaction_id),
            from_minor_units(present(attempt.amount_minor), claimed.currency),
        )
        return await self._finish(claimed.id, attempt.id, settlement_of(answer), phases)

    async def _claim_refund(
        self,
        ledger: PaymentRepository,
        payment: Payment,
        request: RefundRequest,
        request_key: str | None,
    ) -> tuple[Payment, PaymentAttempt | None]:
        """The payment claimed for a refund and its new attempt; no attempt if it is already
        fully refunded and the request asked for the rest."""
        remaining = payment.captured_minor - payment.refunded_minor
        amount_minor = self._requested(request.amount, payment.currency, default=remaining)
        refundable = {PaymentState.CAPTURED, PaymentState.PARTIALLY_REFUNDED}
        claimed = await ledger.claim(
            payment.id,
            Operation.REFUND,
            refundable,
            attempt_id=uuid.uuid4(),
            extra_condition=Payment.captured_minor - Payment.refunded_minor >= amount_minor,
        )
        if claimed is None:
            current = present(await ledger.get(payment.id))
            if current.state is PaymentState.REFUNDED and request.amount is None:
                return current, None
            if current.in_flight is not None:
                raise PaymentInProgress
            if current.state not in refundable:
                raise PaymentStateConflict(
                    f"The payment is {current.state.value}; only captured payments refund."
                )
            left = current.captured_minor - current.refunded_minor
            if left >= amount_minor:
                raise PaymentInProgress  # lost to an operation that has ended since
            raise RefundExceedsCaptured(
                f"At most {from_minor_units(left, current.currency)} {current.currency} "
                "can be refunded."
            )
        attempt = self._new_attempt(claimed, Operation.REFUND, amount_minor)
        attempt.request_key = request_key
        ledger.add_attempt(attempt)
        return claimed, attempt

    async def cancel(self, request: CancelRequest, phases: Phases | None = None) -> PaymentResult:
        phases = phases or self._ledger.phases()
        async with phases.phase() as db:
            ledger = PaymentRepository(db)
            payment = await self._find(ledger, request.payment_id, request.transaction_id)
            claimed = await ledger.claim(
                payment.id, Operation.CANCEL, {PaymentState.AUTHORIZED}, attempt_id=uuid.uuid4()
            )
            if claimed is None:
                current = present(await ledger.get(payment.id))
                if current.state is PaymentState.CANCELED:
                    return PaymentResult(to_response(current))  # already cancelled
                self._refuse(current, PaymentState.AUTHORIZED, "cancelled")
                raise PaymentStateConflict("The payment cannot be cancelled.")
            attempt = self._new_attempt(claimed, Operation.CANCEL, claimed.authorized_minor)
            ledger.add_attempt(attempt)
        answer = await self._client.cancel(present(claimed.transaction_id))
        return await self._finish(claimed.id, attempt.id, settlement_of(answer), phases)

    @staticmethod
    async def _earlier(
        ledger: PaymentRepository,
        payment_id: uuid.UUID,
        operation: Operation,
        request_key: str | None,
    ) -> PaymentAttempt | None:
        """The latest attempt this request (its key) made that did not end in a refusal: a
        retry resumes it. A refused attempt, or one that never reached NetValve, is passed
        over: a new attempt may go."""
        if request_key is None:
            return None
        earlier = [
            attempt
            for attempt in await ledger.attempts(payment_id)
            if attempt.operation is operation and attempt.request_key == request_key
        ]
        if not earlier:
            return None
        attempt = earlier[-1]
        if attempt.resolved_at is None or attempt.outcome is AttemptOutcome.APPROVED:
            return attempt
        return None

    async def _resume(self, payment_id: uuid.UUID, attempt_id: uuid.UUID) -> PaymentResult | None:
        """The answer for a retry whose attempt is still open, once the reconciler has had its
        budget; None if it ended without reaching NetValve (a new attempt may go)."""
        payment = await self._reconciler.within_budget(payment_id)
        async with self._ledger.open() as ledger:
            attempt = present(await ledger.attempt(attempt_id))
            if attempt.resolved_at is None:
                return PaymentResult(to_response(payment), in_progress=True)
            if attempt.outcome is not AttemptOutcome.APPROVED:
                return None
            return PaymentResult(to_response(present(await ledger.get(payment_id))))

    def _refuse(self, current: Payment, needed: PaymentState, verb: str) -> None:
        if current.in_flight is not None:
            raise PaymentInProgress
        if current.state is not needed:
            raise PaymentStateConflict(
                f"The payment is {current.state.value}; only an authorized payment is {verb}."
            )

    @staticmethod
    def _new_attempt(
        payment: Payment, operation: Operation, amount_minor: int, *, final_capture: bool = False
    ) -> PaymentAttempt:
        """The attempt a claim marked in flight (the claim set its id)."""
        return PaymentAttempt(
            id=present(payment.in_flight_attempt_id),
            payment_id=payment.id,
            operation=operation,
            amount_minor=amount_minor,
            final_capture=final_capture if operation is Operation.CAPTURE else None,
        )

    def _requested(self, amount: str | None, currency: str, *, default: int) -> int:
        if amount is None:
            minor = default
        else:
            value = positive_amount(amount)
            if value != quantize(value, currency):
                raise InvalidAmount(f"{currency} amounts have {exponent(currency)} decimals.")
            minor = to_minor_units(value, currency)
        if minor <= 0:
            raise InvalidAmount("Nothing is left for this operation.")
        return minor

    @staticmethod
    async def _find(
        ledger: PaymentRepository, payment_id: uuid.UUID | None, transaction_id: int | None
    ) -> Payment:
        payment = await ledger.find(payment_id=payment_id, transaction_id=transaction_id)
        if payment is None:
            raise PaymentNotFound
        return payment

    async def _finish(
        self,
        payment_id: uuid.UUID,
        attempt_id: uuid.UUID,
        settlement: Settlement,
        phases: Phases,
    ) -> PaymentResult:
        payment = await self._apply(payment_id, attempt_id, settlement, phases)
        if settlement.already_done:
            # NetValve says it is done already: its transaction record decides. The same
            # operation done before (e.g. outside this service) answers with the payment.
            payment = await self._reconciler.reconcile(
                payment_id, settle_missing=True, notify_medusa=False
            )
            async with self._ledger.open() as ledger:
                attempt = present(await ledger.attempt(attempt_id))
            if attempt.outcome is AttemptOutcome.APPROVED:
                return PaymentResult(to_response(payment))
            raise PaymentStateConflict(settlement.response_message or "Already done.")
        if payment.in_flight is not None:
            payment = await self._reconciler.within_budget(payment_id)
            settlement = await self._settled_answer(payment, attempt_id, settlement)
        return outcome_of(payment, settlement)

    async def _settled_answer(
        self, payment: Payment, attempt_id: uuid.UUID, settlement: Settlement
    ) -> Settlement:
        """The answer to report once an unknown or pending outcome was settled: a refusal found
        while settling is a refusal for the caller too, never a 200."""
        async with self._ledger.open() as ledger:
            attempt = present(await ledger.attempt(attempt_id))
        if attempt.resolved_at is None or attempt.outcome is not AttemptOutcome.DECLINED:
            return settlement
        return Settlement(
            outcome=AttemptOutcome.DECLINED,
            response_code=attempt.response_code,
            response_message=attempt.response_message,
            hard_decline=payment.decline_type == "hard",
        )

    async def _apply(
        self,
        payment_id: uuid.UUID,
        attempt_id: uuid.UUID,
        settlement: Settlement,
        phases: Phases,
    ) -> Payment:
        """Apply NetValve's direct answer to the request that sent it: that request answers
        Medusa, so no notification. When the answer ends the operation, nothing else is
        written before the caller's answer, which commits with it (`Phases.hold`)."""
        async with phases.phase() as db:
            payment, _ = await self._ledger.apply_in(
                PaymentRepository(db), payment_id, attempt_id, settlement, notify_medusa=False
            )
            if payment.in_flight is None and not settlement.already_done:
                phases.hold()
        return payment

    async def status(self, query: StatusQuery) -> PaymentResult:
        async with self._ledger.open() as ledger:
            payment = await ledger.find(
                payment_id=query.payment_id,
                transaction_id=query.transaction_id,
                payment_session_id=query.payment_session_id,
                cart_id=query.cart_id,
            )
        if payment is None:
            raise PaymentNotFound
        if query.refresh:
            payment = await self._refreshed(payment)
        return PaymentResult(to_response(payment), in_progress=payment.in_flight is not None)

    async def _refreshed(self, payment: Payment) -> Payment:
        """The payment after a look at NetValve's records; as it is if that look fails, since
        a status read must answer whatever NetValve or the records hold."""
        try:
            return await self._reconciler.reconcile(payment.id)
        except Exception as error:
            if is_database_down(error):
                raise
            log.exception("payment.refresh_failed", payment_id=str(payment.id))
            async with self._ledger.open() as ledger:
                return present(await ledger.get(payment.id))
