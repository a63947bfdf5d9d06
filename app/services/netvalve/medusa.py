"""Medusa's side of a payment: the payment session and cart to charge, and whether they may be.

Medusa's tables are read, never written: the amount to charge is Medusa's, and a session that
Medusa has paid, given up on or closed is never charged.
"""

from decimal import Decimal, InvalidOperation

from app.clients.netvalve import Customer, NetvalveClient, NetvalveConfigurationError
from app.core.money import UnknownCurrency, exponent, normalise_currency, quantize, to_minor_units
from app.db.medusa import MedusaCart, MedusaDataError, MedusaPaymentSession, MedusaRepository
from app.models.payment import Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome
from app.repositories.payment_repository import PaymentRepository
from app.services.netvalve.errors import (
    InvalidAmount,
    NetvalveError,
    PaymentInProgress,
    PaymentStateConflict,
)
from app.services.netvalve.ledger import present
from app.services.netvalve.proof import ROOT_OPERATIONS
from app.services.netvalve.results import PAID_STATES, PaymentResult, medusa_status, to_response

NETVALVE_PROVIDER_PREFIX = "pp_netvalve"
# Medusa payment-session statuses that must not be charged (MEDUSA.md section 7): `canceled` and
# `error` are sessions Medusa gave up on (a retry needs a new session), `authorized` and
# `captured` already hold money. Charging only `pending` and `requires_more` leaves Medusa's
# own view in charge: a session it has decided one way or another is never charged again.
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


class PaymentSessionNotFound(NetvalveError):
    """No live NetValve payment session in Medusa matches."""

    status_code = 404
    message = "No live NetValve payment session matches."


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


class MedusaCheckout:
    def __init__(self, medusa: MedusaRepository, client: NetvalveClient) -> None:
        self._medusa = medusa
        self._client = client

    async def cart(self, session: MedusaPaymentSession) -> MedusaCart | None:
        return await self._medusa.get_cart(session.cart_id) if session.cart_id else None

    async def session(
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
            collection = await self._medusa.get_payment_collection_for_cart(present(cart_id))
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

    def charge(self, session: MedusaPaymentSession) -> tuple[str, Decimal]:
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
        if amount is None or to_minor_units(amount, currency) > LEDGER_MAX_MINOR:
            raise PaymentSessionAmountInvalid(
                f"Medusa's amount for payment session {session.id} is beyond what the ledger "
                "can hold.",
                extra={"payment_session_id": session.id},
            )
        if amount <= 0:
            raise InvalidAmount(f"The payment session's amount {session.amount} is not positive.")
        return currency, amount

    async def payable(
        self,
        session: MedusaPaymentSession,
        cart: MedusaCart | None,
        ledger: PaymentRepository,
        *,
        request_key: str | None = None,
    ) -> PaymentResult | None:
        """Refuses a session that must not be charged; the replayed answer for a retry of the
        request that paid it (same request key); None when it may be charged.

        The ledger is checked first and wins when it says paid: Medusa only learns of our charge
        when the cart completes (authorizePayment), so a session we have paid still shows
        `pending` there. Where Medusa has given up on a session (canceled, error) or completed
        its cart, Medusa wins even though the ledger would allow a new attempt: the shopper
        must start a new Medusa session, and the money would otherwise land on a dead one."""
        payment = await ledger.find(payment_session_id=session.id)
        if payment is not None:
            if payment.state in PAID_STATES:
                return await self.paid_again(payment, ledger, request_key)
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

    async def paid_again(
        self, payment: Payment, ledger: PaymentRepository, request_key: str | None
    ) -> PaymentResult:
        """At most one approved charge per Medusa session: only the request that made it (its
        key on the approved attempt) gets a 200 again, e.g. the retry of a 202 or a 5xx that was
        not stored; any other, a new token above all, is told with the payment that it is paid."""
        if request_key is not None:
            attempts = await ledger.attempts(payment.id)
            if any(
                attempt.request_key == request_key
                and attempt.outcome is AttemptOutcome.APPROVED
                and attempt.operation in ROOT_OPERATIONS
                for attempt in attempts
            ):
                return PaymentResult(to_response(payment))
        raise AlreadyPaid(payment)


def customer(cart: MedusaCart | None, ip: str | None) -> Customer:
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
