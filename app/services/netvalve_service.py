"""Business rules of the NetValve routes: the ledger, its state machine, and gateway outcomes.

Each money operation runs in short phases, each its own transaction (Brandur Leach's "atomic
phases"): (1) claim the payment with a conditional UPDATE and record the attempt, commit; (2) call
NetValve with no database transaction open; (3) lock the payment row and apply the answer, commit.
A payment whose `in_flight` operation is set admits no other operation, so two requests can never
both move money for it, and a crash between phases leaves a marked attempt for the sweep.

Unknown outcomes are never resent: a sale is settled through `/order?clientOrderId=` (our stable
reference) or `/inquiry`; a capture, refund or cancel through the parent's `/transaction` record.
"""

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.netvalve import (
    Approved,
    AuthenticationFailed,
    Customer,
    Declined,
    HppOrderRequest,
    NetvalveClient,
    NetvalveConfigurationError,
    NetvalveResult,
    Pending,
    TransactionRecord,
    Unavailable,
    UnknownOutcome,
    ValidationFailed,
    is_not_found,
    read_record,
)
from app.clients.netvalve import PaymentRequest as GatewayPayment
from app.core import metrics
from app.core.config import CaptureMode, Settings
from app.core.errors import AppError
from app.core.money import UnknownCurrency, exponent, from_minor_units, normalise_currency, quantize
from app.db.errors import is_database_down
from app.db.medusa import MedusaCart, MedusaDataError, MedusaPaymentSession, MedusaRepository
from app.models.hpf_session import HpfSession
from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.repositories.hpf_session_repository import HpfSessionRepository
from app.repositories.payment_repository import NOT_FOUND, RECONCILE_LEASE, PaymentRepository
from app.schemas.netvalve import (
    CancelRequest,
    CaptureRequest,
    HpfSessionResponse,
    RefundRequest,
    StatusQuery,
)
from app.schemas.payment import MedusaStatus, PaymentRequest, PaymentResponse, PaymentUpdate
from app.services.medusa_notifications import LedgerMark, MedusaOutbox
from app.services.proof import (
    RECORD_KINDS,
    ROOT_OPERATIONS,
    minor_of,
    record_answer,
    root_mismatch,
)

log = structlog.get_logger(__name__)

NETVALVE_PROVIDER_PREFIX = "pp_netvalve"
# Attempts that NetValve cannot find are only called failed after this long (by default; the
# setting is NETVALVE_NOT_FOUND_GRACE_SECONDS): right after a timeout the request may still be on
# its way through NetValve. A sale it processes later is not lost: see GatewayEventService.
NOT_FOUND_GRACE = timedelta(
    seconds=Settings.model_fields["netvalve_not_found_grace_seconds"].default
)
HPF_SESSION_LIFETIME = timedelta(seconds=270)  # NetValve's 300 s, less a margin for the browser
UNAVAILABLE_RETRY_DELAYS = (0.2, 0.5)
SETTLED_STATES = frozenset(
    {PaymentState.CAPTURED, PaymentState.PARTIALLY_REFUNDED, PaymentState.REFUNDED}
)
PAID_STATES = SETTLED_STATES | {PaymentState.AUTHORIZED}
_ALREADY = {"GTW_2045", "GTW_2046", "GTW_2047"}
# Medusa payment-session statuses that must not be charged (MEDUSA.md section 7): `canceled` and
# `error` are sessions Medusa gave up on (a retry needs a new session), `authorized` and
# `captured` already hold money. Charging only `pending` and `requires_more` leaves Medusa's
# own view in charge: a session it has settled one way or another is never charged again.
MEDUSA_UNPAYABLE = frozenset({"canceled", "error", "authorized", "captured"})
# Payment collections that already hold money (another session's, maybe another provider's) or
# that Medusa has closed: none of their sessions is charged.
MEDUSA_COLLECTION_UNPAYABLE = frozenset(
    {
        "authorized",
        "partially_authorized",
        "partially_captured",
        "captured",
        "completed",
        "canceled",
        "partially_refunded",
        "refunded",
    }
)
# Orders whose completed cart is never charged: Medusa has closed them.
CLOSED_ORDERS = frozenset({"canceled", "archived", "completed"})
# The largest amount the ledger holds: its minor-unit columns are PostgreSQL bigint.
LEDGER_MAX_MINOR = 2**63 - 1


# --- errors (business facts) ---------------------------------------------------------------


class NetvalveError(AppError):
    """Base of the NetValve routes' errors."""


class PaymentSessionNotFound(NetvalveError):
    """No live NetValve payment session in Medusa matches."""

    status_code = 404
    message = "No live NetValve payment session matches."


class PaymentNotFound(NetvalveError):
    """No payment in the ledger matches."""

    status_code = 404
    message = "No payment matches."


class AmountMismatch(NetvalveError):
    """The request's amount differs from Medusa's payment session."""

    status_code = 422


class InvalidAmount(NetvalveError):
    """The amount is not positive, or has more decimals than the currency."""

    status_code = 422


class UnsupportedCurrency(NetvalveError):
    """NetValve cannot take this currency here (exponent other than 2, or no MID or site)."""

    status_code = 422


class AlreadyPaid(NetvalveError):
    """The Medusa payment session is already paid (authorized or captured); the body carries
    the payment. A retry of the request that paid it (same Idempotency-Key) replays its answer."""

    status_code = 409

    def __init__(self, payment: Payment) -> None:
        super().__init__(
            f"Payment session {payment.payment_session_id} is already paid "
            f"({medusa_status(payment)}).",
            extra={"payment": to_response(payment).model_dump(mode="json")},
        )


class PaymentSessionNotPayable(NetvalveError):
    """Medusa's payment session cannot be charged: it is canceled, error, authorized or
    captured in Medusa, its payment collection is paid or closed, or its cart is completed or
    deleted."""

    status_code = 409


class PaymentSessionAmountInvalid(NetvalveError):
    """Medusa's amount for the payment session is not a finite number the ledger can hold."""

    status_code = 422


class PaymentInProgress(NetvalveError):
    """Another operation on this payment has not finished; retry shortly."""

    status_code = 409

    def __init__(self, message: str = "Another operation on this payment is in progress.") -> None:
        super().__init__(message, headers={"Retry-After": "2"})


class PaymentStateConflict(NetvalveError):
    """The payment's state does not allow this operation."""

    status_code = 409


class CaptureExceedsAuthorized(NetvalveError):
    """The capture is more than the authorized amount not yet captured."""

    status_code = 422


class RefundExceedsCaptured(NetvalveError):
    """The refund is more than the captured amount not yet refunded."""

    status_code = 422


class PaymentDeclined(NetvalveError):
    """NetValve declined; the body carries the payment and NetValve's code."""

    status_code = 402


class GatewayValidationFailed(NetvalveError):
    """NetValve refused the request's fields (e.g. an expired or used payment token)."""

    status_code = 422


class GatewayUnavailable(NetvalveError):
    """NetValve could not be reached; nothing was sent, so a retry is safe."""

    status_code = 503

    def __init__(self, message: str = "NetValve could not be reached; retry shortly.") -> None:
        super().__init__(message, headers={"Retry-After": "5"})


class GatewayMisconfigured(NetvalveError):
    """NetValve refused this service's credentials."""

    status_code = 502
    message = "NetValve refused this service's credentials; an operator must fix them."


class HpfUnavailable(NetvalveError):
    """No step of the hosted-payment-fields waterfall produced a session."""

    status_code = 502
    message = "No hosted-payment-fields source is available."


# --- results -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceResult:
    status_code: int
    payment: PaymentResponse


def medusa_status(payment: Payment) -> MedusaStatus:
    """The ledger state in Medusa's payment-session vocabulary."""
    if payment.state is PaymentState.AUTHORIZED:
        return "authorized"
    if payment.state in SETTLED_STATES:
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


def _minor(value: object, currency: str) -> int:
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    return int(quantize(amount, currency).scaleb(exponent(currency)))


def _gateway_fields(result: Approved | Pending | Declined) -> dict[str, Any]:
    body = result.body
    return {
        "response_code": result.response_code,
        "response_message": result.response_message,
        "card_number": body.get("cardNumber") or None,
        "card_type": body.get("cardType") or None,
    }


class NetvalveService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: NetvalveClient,
        medusa: MedusaRepository,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._client = client
        self._medusa = medusa
        self._settings = settings
        self._outbox = MedusaOutbox(settings)

    @asynccontextmanager
    async def _ledger(self) -> AsyncIterator[PaymentRepository]:
        """One short transaction on the ledger, committed on exit."""
        async with self._sessionmaker.begin() as session:
            yield PaymentRepository.from_session(session)

    # --- Medusa ----------------------------------------------------------------------------

    async def _medusa_session(
        self, payment_session_id: str | None, cart_id: str | None
    ) -> MedusaPaymentSession:
        try:
            return await self._read_medusa_session(payment_session_id, cart_id)
        except MedusaDataError as error:
            # Medusa's row, not this request, is wrong: a 422 naming it, not a 500.
            raise PaymentSessionAmountInvalid(
                f"Medusa's {error}.", extra={"payment_session_id": payment_session_id}
            ) from None

    async def _read_medusa_session(
        self, payment_session_id: str | None, cart_id: str | None
    ) -> MedusaPaymentSession:
        if payment_session_id is not None:
            session = await self._medusa.get_payment_session(payment_session_id)
        else:
            collection = await self._medusa.get_payment_collection_for_cart(_present(cart_id))
            candidates = [
                candidate
                for candidate in (collection.sessions if collection else ())
                if candidate.provider_id.startswith(NETVALVE_PROVIDER_PREFIX)
                and candidate.status != "canceled"
            ]
            session = candidates[0] if candidates else None
        if session is None or not session.provider_id.startswith(NETVALVE_PROVIDER_PREFIX):
            raise PaymentSessionNotFound
        return session

    def _charge(self, session: MedusaPaymentSession) -> tuple[str, Decimal]:
        """Currency and amount to charge: Medusa's raw amount, rounded half-up once."""
        try:
            currency = normalise_currency(session.currency_code)
        except UnknownCurrency:
            raise UnsupportedCurrency(f"Unknown currency {session.currency_code!r}.") from None
        if exponent(currency) != 2:
            raise UnsupportedCurrency(f"NetValve takes two-decimal currencies; {currency} is not.")
        try:
            self._client.routing(currency)
        except NetvalveConfigurationError:
            raise UnsupportedCurrency(
                f"No NetValve MID or site is configured for {currency}."
            ) from None
        try:
            amount = quantize(session.amount, currency)
        except InvalidOperation:  # e.g. 1e100000: beyond any precision
            amount = None
        if amount is None or _minor(amount, currency) > LEDGER_MAX_MINOR:
            raise PaymentSessionAmountInvalid(
                f"Medusa's amount for payment session {session.id} is beyond what the ledger "
                "can hold.",
                extra={"payment_session_id": session.id},
            )
        if amount <= 0:
            raise InvalidAmount(f"The payment session's amount {session.amount} is not positive.")
        return currency, amount

    async def _payable(
        self,
        session: MedusaPaymentSession,
        cart: MedusaCart | None,
        *,
        request_key: str | None = None,
    ) -> ServiceResult | None:
        """Refuses a session that must not be charged; the replayed answer for a retry of the
        request that paid it (same request key); None when it may be charged.

        The ledger is checked first and wins when it says paid: Medusa only learns of our charge
        when the cart completes (authorizePayment), so a session we have paid still shows
        `pending` there. Where Medusa has given up on a session (canceled, error) or completed
        its cart, Medusa wins even though the ledger would allow a new attempt: the shopper
        must start a new Medusa session, and the money would otherwise land on a dead one."""
        async with self._ledger() as ledger:
            payment = await ledger.find(payment_session_id=session.id)
        if payment is not None:
            if payment.state in PAID_STATES:
                return await self._paid_again(payment, request_key)
            if payment.in_flight is not None:
                raise PaymentInProgress
            if payment.state is PaymentState.CANCELED:
                raise PaymentStateConflict("The payment is canceled; it cannot be paid.")
        if session.status in MEDUSA_UNPAYABLE:
            raise PaymentSessionNotPayable(
                f"Medusa's payment session {session.id} is {session.status}; it cannot be paid.",
                extra={"payment_session_id": session.id, "medusa_status": session.status},
            )
        if (
            session.collection_status in MEDUSA_COLLECTION_UNPAYABLE
            or session.collection_completed_at is not None
        ):
            raise PaymentSessionNotPayable(
                f"The payment collection of payment session {session.id} is "
                f"{'completed' if session.collection_completed_at else session.collection_status};"
                " it cannot be paid.",
                extra={
                    "payment_session_id": session.id,
                    "payment_collection_id": session.payment_collection_id,
                },
            )
        if session.cart_id is not None and cart is None:
            raise PaymentSessionNotPayable(
                f"The cart of payment session {session.id} is deleted; it cannot be paid.",
                extra={"payment_session_id": session.id, "cart_id": session.cart_id},
            )
        if cart is not None and cart.completed_at is not None:
            # Medusa 2.21's complete-cart workflow creates the order, links it to the cart and
            # marks the cart completed, each committed, and only then authorizes the payment
            # session, as its last step (it undoes all three if that fails). So a completed cart
            # whose order is live is the one being completed now (or an order waiting for its
            # payment); one with no live order is closed.
            order = await self._medusa.get_order_for_cart(cart.id)
            if order is None or order.canceled_at is not None or order.status in CLOSED_ORDERS:
                raise PaymentSessionNotPayable(
                    f"The cart of payment session {session.id} is completed; it cannot be paid.",
                    extra={"payment_session_id": session.id, "cart_id": cart.id},
                )
        return None

    async def _paid_again(self, payment: Payment, request_key: str | None) -> ServiceResult:
        """At most one approved charge per Medusa session: only the request that made it (its
        key on the approved attempt) gets a 200 again, e.g. the retry of a 202 or a 5xx that was
        not stored; any other, a new token above all, is told with the payment that it is paid."""
        if request_key is not None:
            async with self._ledger() as ledger:
                attempts = await ledger.attempts(payment.id)
            if any(
                attempt.request_key == request_key
                and attempt.outcome is AttemptOutcome.APPROVED
                and attempt.operation in ROOT_OPERATIONS
                for attempt in attempts
            ):
                return ServiceResult(200, to_response(payment))
        raise AlreadyPaid(payment)

    # --- payment ---------------------------------------------------------------------------

    async def pay(
        self, request: PaymentRequest, *, request_key: str | None = None
    ) -> ServiceResult:
        session = await self._medusa_session(request.payment_session_id, request.cart_id)
        cart = await self._medusa.get_cart(session.cart_id) if session.cart_id else None
        replayed = await self._payable(session, cart, request_key=request_key)
        if replayed is not None:
            return replayed
        currency, amount = self._charge(session)
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
        amount_minor = _minor(amount, currency)
        async with self._ledger() as ledger:
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
            claimed = await ledger.claim(payment.id, operation, {PaymentState.REQUIRES_PAYMENT})
            if claimed is None:
                # Lost a race (the checks above passed): the row as the winner left it decides.
                current = _present(await ledger.get(payment.id))
                return await self._already(current, request_key)
            if claimed.amount_minor != amount_minor:
                log.info("payment.amount_changed", payment_id=str(payment.id))
                claimed.amount_minor, claimed.medusa_amount = amount_minor, session.amount
            attempt = PaymentAttempt(
                id=uuid.uuid4(),
                payment_id=payment.id,
                operation=operation,
                client_order_id=f"{payment.id.hex}-{claimed.attempts_count}",
                amount_minor=amount_minor,
                request_key=request_key,
            )
            ledger.add_attempt(attempt)
            claimed.in_flight_attempt_id = attempt.id
            # The token is spent from the moment it may reach NetValve (NetValve uses it up on
            # any processed payment, approved or declined): no GET /hpf/session hands it out
            # again. Done in the claim's transaction, so a GET that reads the HPF session after
            # this commit sees it spent, and one that read it before sees the payment in flight.
            await HpfSessionRepository(ledger.session).spend(request.payment_token, _now())
        gateway_request = GatewayPayment(
            amount=amount,
            currency=currency,
            client_order_id=str(attempt.client_order_id),
            payment_token=request.payment_token,
            customer=_customer(cart, request.customer_ip),
        )
        result = await self._send_payment(operation, gateway_request)
        payment = await self._apply(payment.id, attempt.id, result)
        if payment.in_flight is not None:
            payment = await self._settle_within_budget(payment.id)
            result = await self._settled_answer(payment, attempt.id, result)
        return self._outcome(payment, result)

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

    async def _already(self, payment: Payment, request_key: str | None) -> ServiceResult:
        if payment.in_flight is not None:
            raise PaymentInProgress
        if payment.state in PAID_STATES:
            return await self._paid_again(payment, request_key)
        raise PaymentStateConflict(f"The payment is {payment.state.value}; it cannot be paid.")

    # --- capture, refund, cancel -------------------------------------------------------------

    async def capture(self, request: CaptureRequest) -> ServiceResult:
        if request.amount is not None:
            positive_amount(request.amount)  # before any lookup: a zero is not "nothing left"
        payment = await self._find(request.payment_id, request.transaction_id)
        remaining = payment.authorized_minor - payment.captured_minor
        amount_minor = self._requested(request.amount, payment.currency, default=remaining)
        async with self._ledger() as ledger:
            claimed = await ledger.claim(
                payment.id,
                Operation.CAPTURE,
                {PaymentState.AUTHORIZED},
                extra_condition=Payment.authorized_minor - Payment.captured_minor >= amount_minor,
            )
            if claimed is None:
                current = _present(await ledger.get(payment.id))
                if current.state in SETTLED_STATES and current.captured_minor == amount_minor:
                    return ServiceResult(200, to_response(current))  # already captured, same amount
                self._refuse(current, PaymentState.AUTHORIZED, "captured")
                raise CaptureExceedsAuthorized(
                    f"At most {from_minor_units(remaining, current.currency)} "
                    f"{current.currency} can be captured."
                )
            attempt = self._new_attempt(
                claimed, Operation.CAPTURE, amount_minor, final_capture=amount_minor < remaining
            )
            ledger.add_attempt(attempt)
        result = await self._client.capture(
            _present(claimed.transaction_id),
            from_minor_units(amount_minor, claimed.currency),
            final_capture=bool(attempt.final_capture),
        )
        return await self._finish(claimed.id, attempt.id, result)

    async def refund(
        self, request: RefundRequest, *, request_key: str | None = None
    ) -> ServiceResult:
        if request.amount is not None:
            positive_amount(request.amount)  # before any lookup: a zero is not "nothing left"
        payment = await self._find(request.payment_id, request.transaction_id)
        if request_key is not None:
            # A partial refund can be repeated, so the ledger's state cannot tell a retry from
            # a second refund: the request key can. A retry resumes its own attempt.
            resumed = await self._resume(payment.id, Operation.REFUND, request_key)
            if resumed is not None:
                return resumed
        remaining = payment.captured_minor - payment.refunded_minor
        amount_minor = self._requested(request.amount, payment.currency, default=remaining)
        refundable = {PaymentState.CAPTURED, PaymentState.PARTIALLY_REFUNDED}
        async with self._ledger() as ledger:
            claimed = await ledger.claim(
                payment.id,
                Operation.REFUND,
                refundable,
                extra_condition=Payment.captured_minor - Payment.refunded_minor >= amount_minor,
            )
            if claimed is None:
                current = _present(await ledger.get(payment.id))
                if current.state is PaymentState.REFUNDED and request.amount is None:
                    return ServiceResult(200, to_response(current))  # already fully refunded
                if current.in_flight is not None:
                    raise PaymentInProgress
                if current.state not in refundable:
                    raise PaymentStateConflict(
                        f"The payment is {current.state.value}; only captured payments refund."
                    )
                left = from_minor_units(
                    current.captured_minor - current.refunded_minor, current.currency
                )
                raise RefundExceedsCaptured(f"At most {left} {current.currency} can be refunded.")
            attempt = self._new_attempt(claimed, Operation.REFUND, amount_minor)
            attempt.request_key = request_key
            ledger.add_attempt(attempt)
        result = await self._client.refund(
            _present(claimed.settled_transaction_id),
            from_minor_units(amount_minor, claimed.currency),
        )
        return await self._finish(claimed.id, attempt.id, result)

    async def cancel(self, request: CancelRequest) -> ServiceResult:
        payment = await self._find(request.payment_id, request.transaction_id)
        async with self._ledger() as ledger:
            claimed = await ledger.claim(payment.id, Operation.CANCEL, {PaymentState.AUTHORIZED})
            if claimed is None:
                current = _present(await ledger.get(payment.id))
                if current.state is PaymentState.CANCELED:
                    return ServiceResult(200, to_response(current))  # already cancelled
                self._refuse(current, PaymentState.AUTHORIZED, "cancelled")
                raise PaymentStateConflict("The payment cannot be cancelled.")
            attempt = self._new_attempt(claimed, Operation.CANCEL, claimed.authorized_minor)
            ledger.add_attempt(attempt)
        result = await self._client.cancel(_present(claimed.transaction_id))
        return await self._finish(claimed.id, attempt.id, result)

    async def _resume(
        self, payment_id: uuid.UUID, operation: Operation, request_key: str
    ) -> ServiceResult | None:
        """The answer for a retried request whose attempt exists; None if it never happened."""
        async with self._ledger() as ledger:
            earlier = [
                attempt
                for attempt in await ledger.attempts(payment_id)
                if attempt.operation is operation and attempt.request_key == request_key
            ]
        if not earlier:
            return None
        attempt = earlier[-1]
        if attempt.resolved_at is None:
            payment = await self._settle_within_budget(payment_id)
            async with self._ledger() as ledger:
                attempt = _present(await ledger.attempt(attempt.id))
            if attempt.resolved_at is None:
                return ServiceResult(202, to_response(payment))
        if attempt.outcome is not AttemptOutcome.APPROVED:
            return None  # refused or never reached NetValve: a new attempt may go
        async with self._ledger() as ledger:
            return ServiceResult(200, to_response(_present(await ledger.get(payment_id))))

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
        attempt = PaymentAttempt(
            id=uuid.uuid4(),
            payment_id=payment.id,
            operation=operation,
            amount_minor=amount_minor,
            final_capture=final_capture if operation is Operation.CAPTURE else None,
        )
        payment.in_flight_attempt_id = attempt.id
        return attempt

    def _requested(self, amount: str | None, currency: str, *, default: int) -> int:
        if amount is None:
            minor = default
        else:
            value = positive_amount(amount)
            if value != quantize(value, currency):
                raise InvalidAmount(f"{currency} amounts have {exponent(currency)} decimals.")
            minor = _minor(value, currency)
        if minor <= 0:
            raise InvalidAmount("Nothing is left for this operation.")
        return minor

    async def _find(self, payment_id: uuid.UUID | None, transaction_id: int | None) -> Payment:
        async with self._ledger() as ledger:
            payment = await ledger.find(payment_id=payment_id, transaction_id=transaction_id)
        if payment is None:
            raise PaymentNotFound
        return payment

    async def _finish(
        self, payment_id: uuid.UUID, attempt_id: uuid.UUID, result: NetvalveResult
    ) -> ServiceResult:
        payment = await self._apply(payment_id, attempt_id, result)
        if isinstance(result, Declined) and _already_done(result):
            # NetValve says it is done already: its transaction record decides. The same
            # operation done before (e.g. outside this service) answers with the payment.
            payment = await self.reconcile(payment_id, settle_missing=True, notify_medusa=False)
            async with self._ledger() as ledger:
                attempt = _present(await ledger.attempt(attempt_id))
            if attempt.outcome is AttemptOutcome.APPROVED:
                return ServiceResult(200, to_response(payment))
            raise PaymentStateConflict(result.response_message or "Already done.")
        if payment.in_flight is not None:
            payment = await self._settle_within_budget(payment_id)
            result = await self._settled_answer(payment, attempt_id, result)
        return self._outcome(payment, result)

    async def _settled_answer(
        self, payment: Payment, attempt_id: uuid.UUID, result: NetvalveResult
    ) -> NetvalveResult:
        """The answer to report once an unknown or pending outcome was settled: a refusal found
        while settling is a refusal for the caller too, never a 200."""
        async with self._ledger() as ledger:
            attempt = _present(await ledger.attempt(attempt_id))
        if attempt.resolved_at is None or attempt.outcome is not AttemptOutcome.DECLINED:
            return result
        return Declined(
            operation=attempt.operation.value,
            http_status=200,
            body={},
            response_code=attempt.response_code,
            response_message=attempt.response_message,
            response_code_type="HARD DECLINE" if payment.decline_type == "hard" else "SOFT DECLINE",
        )

    # --- applying gateway answers ------------------------------------------------------------

    async def _apply(
        self, payment_id: uuid.UUID, attempt_id: uuid.UUID, result: NetvalveResult
    ) -> Payment:
        """Apply NetValve's direct answer to the request that sent it: that request answers
        Medusa, so no notification."""
        payment, _ = await self._apply_once(payment_id, attempt_id, result, notify_medusa=False)
        return payment

    async def _apply_once(
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
        async with self._ledger() as ledger:
            payment = await ledger.get(payment_id, for_update=True)
            attempt = await ledger.attempt(attempt_id)
            payment, attempt = _present(payment), _present(attempt)
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
                    operation=result.operation, http_status=200, reason="known_transaction"
                )
            _record(attempt, result)
            if _is_not_found(result) and attempt.client_order_id is not None:
                attempt.reason = NOT_FOUND  # looked up once more later: see GatewayEventService
            changes = self._changes(payment, attempt, result)
            ledger.apply(payment, changes)
            await self._record_absorbed_refunds(ledger, payment, attempt, result)
            if _resolved(result):
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
                    charge_ended=attempt.operation in ROOT_OPERATIONS and _resolved(result),
                )
            log.info(
                "payment.attempt_applied",
                payment_id=str(payment.id),
                operation=attempt.operation.value,
                outcome=attempt.outcome.value,
                state=payment.state.value,
            )
        return payment, True

    @staticmethod
    async def _record_absorbed_refunds(
        ledger: PaymentRepository, payment: Payment, attempt: PaymentAttempt, result: NetvalveResult
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

    def _changes(
        self, payment: Payment, attempt: PaymentAttempt, result: NetvalveResult
    ) -> PaymentUpdate:
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
                captured = min(
                    int(result.body.get("ledgerMinor", amount)), payment.authorized_minor
                )
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
        if isinstance(result, Pending | UnknownOutcome) or _already_done(result):
            if operation in (Operation.SALE, Operation.AUTHORIZE) and not _already_done(result):
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

    def _outcome(self, payment: Payment, result: NetvalveResult) -> ServiceResult:
        response = to_response(payment)
        if payment.in_flight is not None or payment.state is PaymentState.PENDING:
            return ServiceResult(202, response)
        if isinstance(result, Declined):
            raise PaymentDeclined(
                result.response_message or "NetValve declined the request.",
                extra={
                    "payment": response.model_dump(mode="json"),
                    "response_code": result.response_code,
                    "response_message": result.response_message,
                    "decline_type": "hard" if result.hard else "soft",
                },
            )
        if isinstance(result, ValidationFailed):
            raise GatewayValidationFailed(
                "; ".join(error.response_message for error in result.errors)
                or "NetValve refused the request.",
                extra={"response_codes": [error.response_code for error in result.errors]},
            )
        if isinstance(result, AuthenticationFailed):
            log.error("netvalve.credentials_refused", response_code=result.response_code)
            raise GatewayMisconfigured
        if isinstance(result, Unavailable):
            raise GatewayUnavailable
        return ServiceResult(200, response)

    # --- settling unknown and pending outcomes -------------------------------------------------

    async def _settle_within_budget(self, payment_id: uuid.UUID) -> Payment:
        budget = self._settings.unknown_outcome_budget_seconds
        if budget <= 0:
            async with self._ledger() as ledger:
                return _present(await ledger.get(payment_id))
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
        confirm_settled: bool = True,
        notify_medusa: bool = True,
    ) -> tuple[Payment, bool]:
        """The payment, and whether this call settled its operation. With `confirm_settled`, a
        payment with nothing in flight is checked against NetValve's inquiry."""
        async with self._ledger() as ledger:
            payment = await ledger.get(payment_id)
            attempt = (
                await ledger.attempt(payment.in_flight_attempt_id)
                if payment is not None and payment.in_flight_attempt_id
                else None
            )
        if payment is None:
            raise PaymentNotFound
        if attempt is None:
            if confirm_settled and payment.transaction_id is not None and payment.in_flight is None:
                return await self._sync_settled(payment), False
            return payment, False
        result = await self._evidence(payment, attempt, settle_missing=settle_missing)
        if result is None:
            return payment, False
        payment, applied = await self._apply_once(
            payment.id, attempt.id, result, notify_medusa=notify_medusa
        )
        return payment, applied and payment.in_flight is None

    async def _evidence(
        self, payment: Payment, attempt: PaymentAttempt, *, settle_missing: bool
    ) -> NetvalveResult | None:
        """What NetValve's records say about `attempt`, as the answer it would have given."""
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
        return _not_found(attempt) if old_enough else None

    async def _root_evidence(
        self, payment: Payment, attempt: PaymentAttempt, *, old_enough: bool
    ) -> NetvalveResult | None:
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
            return _not_found(attempt)
        if is_not_found(found):
            return _not_found(attempt) if old_enough else None
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
        return record_answer(attempt.operation, record)

    async def _sync_settled(self, payment: Payment) -> Payment:
        """Nothing in flight: record what NetValve's inquiry says, without moving the state."""
        answer = await self._client.inquiry(_present(payment.transaction_id))
        log.info(
            "payment.confirmed",
            payment_id=str(payment.id),
            outcome=type(answer).__name__,
            gateway_status=answer.body.get("status") if isinstance(answer, Approved) else None,
        )
        return payment

    async def sweep_once(self, limit: int = 50, stop: asyncio.Event | None = None) -> int:
        """Settle what is due among unresolved operations; safe with several sweepers.

        When `stop` is set, the sweep ends after the payment in hand and hands the rest of its
        claim back, so that another sweeper takes them at once instead of after the lease."""
        now = _now()
        async with self._ledger() as ledger:
            due = await ledger.due_for_reconcile(
                now, timedelta(seconds=self._settings.reconcile_min_age_seconds), limit
            )
        changed = 0
        for index, payment_id in enumerate(due):
            if stop is not None and stop.is_set():
                async with self._ledger() as ledger:
                    await ledger.release_reconcile(due[index:], now + RECONCILE_LEASE)
                break
            try:
                # Settled since the claim (by its own request or a webhook): nothing to confirm.
                payment, settled = await self._reconcile(
                    payment_id, confirm_settled=False, notify_medusa=True
                )
            except Exception as error:
                if is_database_down(error):
                    raise
                # Backed off like any other try (not every minute), and counted: the payment
                # stays visible as unsettled in the metrics until someone looks.
                log.exception("reconcile.failed", payment_id=str(payment_id))
                metrics.RECONCILE_FAILURES.inc()
                async with self._ledger() as ledger:
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
        async with self._ledger() as ledger:
            current = await ledger.get(payment.id, for_update=True)
            if current is not None and current.in_flight is not None:
                current.next_reconcile_at = _now() + timedelta(seconds=delay)

    # --- status ------------------------------------------------------------------------------

    async def status(self, query: StatusQuery) -> ServiceResult:
        async with self._ledger() as ledger:
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
        return ServiceResult(202 if payment.in_flight else 200, to_response(payment))

    async def _refreshed(self, payment: Payment) -> Payment:
        """The payment after a look at NetValve's records; as it is if that look fails, since
        a status read must answer whatever NetValve or the records hold."""
        try:
            return await self.reconcile(payment.id)
        except Exception as error:
            if is_database_down(error):
                raise
            log.exception("payment.refresh_failed", payment_id=str(payment.id))
            async with self._ledger() as ledger:
                return _present(await ledger.get(payment.id))

    # --- hosted payment fields -----------------------------------------------------------------

    async def hpf_session(
        self, payment_session_id: str | None, cart_id: str | None, *, reuse: bool
    ) -> HpfSessionResponse:
        session = await self._medusa_session(payment_session_id, cart_id)
        cart = await self._medusa.get_cart(session.cart_id) if session.cart_id else None
        now = _now()
        live = None
        if reuse:
            # Read before the ledger check (see pay): a payment claimed between the two
            # statements is seen by the check, one claimed before by this read.
            async with self._sessionmaker.begin() as db:
                live = await HpfSessionRepository(db).live(session.id, now)
        await self._payable(session, cart)
        currency, amount = self._charge(session)
        if live is not None:
            return HpfSessionResponse(
                **live.payload, id=live.id, expires_at=live.expires_at, reused=True
            )
        source, payload, steps = await self._waterfall(session, currency, amount)
        if source is None:
            raise HpfUnavailable(extra={"steps": steps})
        record = HpfSession(
            id=uuid.uuid4(),
            payment_session_id=session.id,
            source=source,
            payment_token=payload.get("payment_token"),
            payload={
                "payment_session_id": session.id,
                "source": source,
                "amount": format(amount, "f"),
                "currency_code": currency,
                "script_src": payload.get("script_src"),
                "integrity": payload.get("integrity"),
                "payment_token": payload.get("payment_token"),
                "redirect_url": payload.get("redirect_url"),
            },
            expires_at=now + HPF_SESSION_LIFETIME,
        )
        async with self._sessionmaker.begin() as db:
            HpfSessionRepository(db).add(record)
        log.info("hpf.session_created", payment_session_id=session.id, source=source)
        return HpfSessionResponse(
            **record.payload, id=record.id, expires_at=record.expires_at, reused=False
        )

    async def _waterfall(
        self, session: MedusaPaymentSession, currency: str, amount: Decimal
    ) -> tuple[str | None, dict[str, Any], list[dict[str, str]]]:
        settings = self._settings
        steps: list[dict[str, str]] = []

        def skipped(step: str, why: str) -> None:
            steps.append({"step": step, "outcome": why})

        if settings.netvalve_hpf_script_src:
            return (
                "override_script",
                {
                    "script_src": str(settings.netvalve_hpf_script_src),
                    "integrity": settings.netvalve_hpf_script_integrity,
                },
                steps,
            )
        if settings.netvalve_hpp_direct_url:
            return "override_hpp", {"redirect_url": str(settings.netvalve_hpp_direct_url)}, steps
        skipped("override", "not configured")

        api = await self._client.initialize_hpf_session()
        if isinstance(api, Approved) and api.body.get("paymentToken"):
            return (
                "api",
                {
                    "script_src": api.body.get("netvalveScriptSrc"),
                    "integrity": api.body.get("integrity"),
                    "payment_token": api.body.get("paymentToken"),
                },
                steps,
            )
        skipped("api", _describe(api))

        if settings.netvalve_basic_auth_username and settings.netvalve_basic_auth_password:
            scripts = await self._client.backoffice_hpf_scripts()
            chosen = _pick_script(scripts)
            if chosen is not None:
                return (
                    "backoffice",
                    {
                        "script_src": chosen.get("netvalveScriptSrc"),
                        "integrity": chosen.get("integrity"),
                    },
                    steps,
                )
            reason = "no active script" if isinstance(scripts, Approved) else _describe(scripts)
            skipped("backoffice", reason)
        else:
            skipped("backoffice", "no basic-auth credentials")

        if settings.netvalve_hpp_fallback_enabled:
            order = await self._client.create_hpp_order(
                HppOrderRequest(
                    amount=amount,
                    currency=currency,
                    client_order_id=f"hpp-{uuid.uuid4().hex}",
                    success_url=str(settings.netvalve_hpp_success_url),
                    cancel_url=str(settings.netvalve_hpp_cancel_url),
                    failed_url=str(settings.netvalve_hpp_failed_url),
                    mode="SALE"
                    if settings.netvalve_capture_mode is CaptureMode.SALE
                    else "AUTHORIZATION",
                )
            )
            if isinstance(order, Approved) and order.body.get("redirectUrl"):
                return "hpp", {"redirect_url": order.body["redirectUrl"]}, steps
            skipped("hpp", _describe(order))
        else:
            skipped("hpp", "fallback disabled")

        if settings.netvalve_hpf_fallback_script_src:
            return "static", {"script_src": str(settings.netvalve_hpf_fallback_script_src)}, steps
        skipped("static", "not configured")
        return None, {}, steps


# --- helpers -----------------------------------------------------------------------------------


T = TypeVar("T")


def _present(value: T | None) -> T:
    """A value the ledger's invariants guarantee; its absence is a bug, not a request error."""
    if value is None:
        raise RuntimeError("ledger invariant broken: a required value is missing")
    return value


def _customer(cart: MedusaCart | None, ip: str | None) -> Customer:
    if cart is None:
        return Customer(ip=ip)
    address = cart.billing_address or cart.shipping_address
    if address is None:
        return Customer(email=cart.email, ip=ip)
    street = ", ".join(part for part in (address.address_1, address.address_2) if part) or None
    return Customer(
        email=cart.email,
        first_name=address.first_name,
        last_name=address.last_name,
        address=street,
        city=address.city,
        state=address.province,
        zip_code=address.postal_code,
        country_code=address.country_code,
        phone=address.phone,
        ip=ip,
    )


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


def _resolved(result: NetvalveResult) -> bool:
    return not isinstance(result, Pending | UnknownOutcome) and not _already_done(result)


def _already_done(result: NetvalveResult) -> bool:
    """NetValve refused a capture, refund or cancel as already done: its record must decide."""
    return (
        isinstance(result, Declined)
        and result.response_code in _ALREADY
        and result.operation in ("capture", "refund", "cancel")
    )


def _is_not_found(result: NetvalveResult) -> bool:
    return isinstance(result, Declined) and result.http_status == 404


def _not_found(attempt: PaymentAttempt) -> Declined:
    return Declined(
        operation=attempt.operation.value,
        http_status=404,
        body={},
        response_code="GTW_2103",
        response_message="NetValve has no record of this request: it was not processed.",
        response_code_type="SOFT DECLINE",
    )


def _child_done(
    record: TransactionRecord, attempt: PaymentAttempt, payment: Payment
) -> Approved | None:
    """Approved if NetValve's record of the parent shows `attempt`'s operation as done: an
    approved child of its type (a declined capture or refund is no capture or refund)."""

    def approved(transaction_id: object, ledger_minor: int | None = None, **extra: Any) -> Approved:
        body: dict[str, Any] = {"transactionID": transaction_id, **extra}
        if ledger_minor is not None:
            body["ledgerMinor"] = ledger_minor
        return Approved(
            operation=attempt.operation.value,
            http_status=200,
            body=body,
            response_code="GTW_1000",
            response_message="Settled from NetValve's transaction record.",
            response_code_type="APPROVED",
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
        return approved(matching[-1].transaction_id, minor(matching[-1]))
    refunded = sum(minor(child) for child in matching)
    if refunded >= payment.refunded_minor + (attempt.amount_minor or 0):
        absorbed = [(child.transaction_id, minor(child)) for child in matching]
        return approved(None, refunded, absorbedRefunds=absorbed)
    return None


def _pick_script(scripts: NetvalveResult) -> dict[str, Any] | None:
    if not isinstance(scripts, Approved):
        return None
    usable = [
        item
        for item in scripts.body.get("items", [])
        if isinstance(item, dict)
        and item.get("status") == "ACTIVE"
        and not item.get("deleted")
        and item.get("netvalveScriptSrc")
    ]
    defaults = [item for item in usable if item.get("isDefault")]
    ranked = sorted(defaults or usable, key=lambda item: str(item.get("createdDate") or ""))
    return ranked[-1] if ranked else None


def _describe(result: NetvalveResult) -> str:
    """A step's outcome for the 502 diagnostic: kind and code, never a body or a secret."""
    if isinstance(result, UnknownOutcome | Unavailable):
        return f"{type(result).__name__}: {result.reason}"
    code = getattr(result, "response_code", None)
    status = f"HTTP {result.http_status}" if result.http_status else "no answer"
    return f"{type(result).__name__} ({status}{', ' + code if code else ''})"
