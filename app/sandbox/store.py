"""The sandbox's state and NetValve's rules over it.

All state lives in memory behind one `asyncio.Lock`, so concurrent requests see each other's
effects in a single order, as they would on a real gateway. Every operation returns the HTTP
status and JSON body NetValve would send; the assumptions behind each choice are in README.md.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core.cards import luhn_valid, mask
from app.core.money import UnknownCurrency, normalise_currency
from app.sandbox import cards
from app.sandbox.cards import Outcome

Body = dict[str, Any] | list[dict[str, Any]]
Answer = tuple[int, Body]
EventSink = Callable[[str, dict[str, Any]], None]

HPF_TOKEN_CREATED = ("GTW_1003", "Hosted Payment Fields Token Created Successful.")
FIRST_TRANSACTION_ID = 18747


def timestamp() -> str:
    """`2024-11-08T12:38:58.140+00:00`, as NetValve stamps its responses."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+00:00"


def webhook_timestamp() -> str:
    """Webhooks use local time with nanoseconds and no zone (NETVALVE_API.md §4)."""
    now = datetime.now()
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000"


def field_error(code: str, field_name: str, message: str) -> dict[str, str]:
    # Two spaces before "Message", as NetValve writes it.
    return {
        "responseCode": code,
        "responseMessage": f"Validation error for field = {field_name}  Message:- {message}",
        "responseCodeType": "SOFT DECLINE",
    }


def refusal(code: str, message: str, http_status: int = 400) -> Answer:
    return http_status, {
        "traceID": str(uuid.uuid4()),
        "responseTimestamp": timestamp(),
        "responseCode": code,
        "responseMessage": message,
        "responseCodeType": "SOFT DECLINE",
    }


@dataclass
class Card:
    number: str
    expire_month: str
    expire_year: str
    holder: str | None

    @property
    def masked(self) -> str:
        return mask(self.number)


@dataclass
class HpfToken:
    token: str
    expires_at: float
    card: Card | None = None
    used: bool = False


@dataclass
class Transaction:
    id: int
    type: str  # SALE | AUTHORIZATION | CAPTURE | REFUND | CANCEL
    amount: Decimal
    currency: str
    outcome: Outcome
    status: str
    order_id: int
    client_order_id: str | None
    routing: dict[str, Any]
    card: Card | None
    parent_id: int | None = None
    channel: str = "HOSTED_PAYMENT_FIELDS"  # or API, for card fields sent directly
    captured: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)
    children: list[int] = field(default_factory=list)
    chargebacks: list[Decimal] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    created_monotonic: float = field(default_factory=time.monotonic)
    trace_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    auth_code: str = field(default_factory=lambda: secrets.token_hex(3).upper())
    bank_transaction_id: str = field(default_factory=lambda: str(secrets.randbelow(10**12)))


@dataclass
class SandboxRules:
    token_ttl_seconds: float = 300.0
    pending_seconds: float = 5.0
    partial_capture_enabled: bool = True
    partial_refund_enabled: bool = True


class ValidationErrors(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    return None


def _transaction_id(body: dict[str, Any]) -> int:
    value = body.get("transactionID")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationErrors(
            [field_error("GTW_2048", "transactionID", "Transaction ID missing.")]
        )
    return value


def _optional_amount(body: dict[str, Any]) -> Decimal | None:
    return None if body.get("amount") is None else _amount(body)


def _amount(body: dict[str, Any]) -> Decimal:
    amount = _decimal(body.get("amount"))
    if amount is None:
        raise ValidationErrors([field_error("GTW_2002", "amount", "Invalid or missing amount.")])
    if amount <= 0:
        raise ValidationErrors([field_error("GTW_2004", "amount", "Amount must be positive.")])
    if amount != amount.quantize(Decimal("0.01")):
        raise ValidationErrors(
            [field_error("GTW_2003", "amount", "Amount must have two decimal places.")]
        )
    return amount.quantize(Decimal("0.01"))


def validate_card(body: dict[str, Any]) -> Card:
    number = str(body.get("cardNumber") or "").replace(" ", "")
    month = str(body.get("cardExpireMonth") or "")
    year = str(body.get("cardExpireYear") or "")
    cvv = str(body.get("cardSecurityCode") or "")
    errors = []
    # NetValve's documented decline card fails the Luhn check; the test cards are accepted as is.
    if not (luhn_valid(number) or number in cards.CARD_OUTCOMES):
        errors.append(field_error("GTW_2034", "cardNumber", "Card Number Invalid."))
    if month not in {f"{m:02d}" for m in range(1, 13)}:
        errors.append(field_error("GTW_2023", "cardExpireMonth", "Invalid expiry month."))
    if not (len(year) == 4 and year.isdigit() and 2000 <= int(year) <= 2999):
        errors.append(field_error("GTW_2035", "cardExpireYear", "Invalid expiry year."))
    elif month.isdigit() and (int(year), int(month)) < (
        datetime.now(UTC).year,
        datetime.now(UTC).month,
    ):
        errors.append(field_error("GTW_2066", "cardExpireYear", "Card expired."))
    if not (cvv.isdigit() and 3 <= len(cvv) <= 4):
        errors.append(field_error("GTW_2006", "cardSecurityCode", "Invalid security code."))
    if errors:
        raise ValidationErrors(errors)
    holder = body.get("cardHolderName")
    return Card(number, month, year, str(holder) if holder else None)


def _routing(body: dict[str, Any]) -> dict[str, Any]:
    routing = {name: body[name] for name in ("midId", "netvalveMidId", "siteId") if body.get(name)}
    if not routing:
        raise ValidationErrors(
            [field_error("GTW_2000", "midId", "Invalid merchant: midId, netvalveMidId or siteId.")]
        )
    return routing


def _currency(body: dict[str, Any]) -> str:
    raw = body.get("currency")
    if not raw:
        raise ValidationErrors([field_error("GTW_2018", "currency", "Currency is required.")])
    try:
        return normalise_currency(str(raw))
    except UnknownCurrency:
        raise ValidationErrors([field_error("GTW_2019", "currency", "Invalid currency.")]) from None


def _jwt(secret: bytes, claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


class SandboxStore:
    def __init__(self, rules: SandboxRules, events: EventSink, client_id: str) -> None:
        self.rules = rules
        self._events = events
        self._client_id = client_id
        self._lock = asyncio.Lock()
        self._jwt_secret = secrets.token_bytes(32)
        self.reset()

    def reset(self) -> None:
        self.transactions: dict[int, Transaction] = {}
        self.tokens: dict[str, HpfToken] = {}
        self.client_order_ids: dict[str, int] = {}
        # Ids stay unique across restarts (as NetValve's are), so a ledger kept in a database
        # never meets the same transaction id twice: start from the clock in milliseconds.
        self._next_id = max(FIRST_TRANSACTION_ID, int(time.time() * 1000))
        self._next_order = 5001

    # --- hosted payment fields ---------------------------------------------------------------

    async def initialize_hpf_session(self, base_url: str) -> Answer:
        async with self._lock:
            token = str(uuid.uuid4())
            issued = int(time.time())
            self.tokens[token] = HpfToken(token, time.monotonic() + self.rules.token_ttl_seconds)
        jwt = _jwt(
            self._jwt_secret,
            {
                "jti": token,
                "iat": issued,
                "iss": "NETVALVE",
                "exp": issued + round(self.rules.token_ttl_seconds),
            },
        )
        version = "1.0.0"
        return 200, {
            "traceID": str(uuid.uuid4()),
            "responseTimestamp": timestamp(),
            "responseCode": HPF_TOKEN_CREATED[0],
            "responseMessage": HPF_TOKEN_CREATED[1],
            "responseCodeType": "APPROVED",
            "netvalveScriptSrc": (
                f"{base_url}/hpf/sdk.js?version={version}&paymentToken={token}&jwtToken={jwt}"
            ),
            "version": version,
            "integrity": str(uuid.uuid4()),
            "paymentToken": token,
            "jwtToken": jwt,
        }

    async def tokenize(self, body: dict[str, Any]) -> Answer:
        try:
            card = validate_card(body)
            async with self._lock:
                token = self._live_token(body.get("paymentToken"))
                token.card = card
        except ValidationErrors as exc:
            return 400, exc.errors
        return 200, {
            "traceID": str(uuid.uuid4()),
            "responseTimestamp": timestamp(),
            "responseCode": "GTW_1000",
            "responseMessage": "Transaction Approved/ Request Successful.",
            "responseCodeType": "APPROVED",
            "paymentToken": token.token,
            "cardNumber": card.masked,
            "cardType": cards.card_type(card.number),
        }

    def _live_token(self, value: object) -> HpfToken:
        token = self.tokens.get(str(value)) if value else None
        if token is None or token.used or token.expires_at < time.monotonic():
            state = "unknown" if token is None else "used" if token.used else "expired"
            raise ValidationErrors(
                [field_error("GTW_2063", "paymentToken", f"Payment token is {state}.")]
            )
        return token

    # --- payments ----------------------------------------------------------------------------

    async def pay(self, kind: str, body: dict[str, Any]) -> Answer:
        """`kind` is SALE or AUTHORIZATION."""
        try:
            amount = _amount(body)
            currency = _currency(body)
            routing = _routing(body)
            client_order_id = body.get("clientOrderId")
            if client_order_id is not None and len(str(client_order_id)) > 100:
                raise ValidationErrors(
                    [field_error("GTW_2020", "clientOrderId", "At most 100 characters.")]
                )
            async with self._lock:
                # Checked before the token is spent, so a refused duplicate leaves it usable.
                if client_order_id is not None and str(client_order_id) in self.client_order_ids:
                    return refusal("GTW_2065", "Duplicate clientOrderId.")
                card = self._card_for_payment(body)
                outcome = cards.outcome_for(card.number, amount)
                status = _initial_status(kind, outcome)
                transaction = self._new(
                    kind, amount, currency, outcome, status, client_order_id, routing, card
                )
                transaction.channel = "HOSTED_PAYMENT_FIELDS" if body.get("paymentToken") else "API"
                if client_order_id is not None:
                    self.client_order_ids[str(client_order_id)] = transaction.id
                self._emit(transaction)
                return 200, self._response(transaction)
        except ValidationErrors as exc:
            return 400, exc.errors

    def _card_for_payment(self, body: dict[str, Any]) -> Card:
        payment_type = body.get("paymentType")
        if payment_type is not None and payment_type not in {"CARD", "WALLET", "TOKEN"}:
            raise ValidationErrors(
                [field_error("GTW_2093", "paymentType", "Must be one of CARD, WALLET, TOKEN.")]
            )
        if body.get("paymentToken"):
            token = self._live_token(body["paymentToken"])
            if token.card is None:
                raise ValidationErrors(
                    [field_error("GTW_2063", "paymentToken", "Payment token has no card.")]
                )
            token.used = True
            return token.card
        return validate_card(body)

    async def capture(self, body: dict[str, Any]) -> Answer:
        try:
            transaction_id = _transaction_id(body)
            amount = _amount(body)
            final = bool((body.get("captureOptions") or {}).get("finalCapture"))
            async with self._lock:
                parent = self._settle_pending(self.transactions.get(transaction_id))
                if parent is None:
                    return refusal("GTW_2103", "Reference transaction not found.", 404)
                refused = self._capture_refusal(parent, amount, final)
                if refused:
                    return refused
                parent.captured = amount
                parent.status = "Settled" if amount == parent.amount else "PARTIALLY_SETTLED"
                child = self._child(parent, "CAPTURE", amount, "Settled")
                self._emit(child)
                return 200, self._response(child)
        except ValidationErrors as exc:
            return 400, exc.errors

    def _capture_refusal(self, parent: Transaction, amount: Decimal, final: bool) -> Answer | None:
        refused = _state_refusal(parent)
        if refused:
            return refused
        if amount > parent.amount:
            return refusal("GTW_2124", "Partial capture amount exceeds the authorized amount.")
        if amount < parent.amount and not self.rules.partial_capture_enabled:
            return refusal("GTW_2123", "Partial capture not allowed.")
        if amount < parent.amount and not final:
            return refusal("GTW_2038", "Capture amount must equal the authorized amount.")
        return None

    async def cancel(self, body: dict[str, Any]) -> Answer:
        try:
            transaction_id = _transaction_id(body)
            async with self._lock:
                parent = self._settle_pending(self.transactions.get(transaction_id))
                if parent is None:
                    return refusal("GTW_2103", "Reference transaction not found.", 404)
                refused = _state_refusal(parent)
                if refused:
                    return refused
                parent.status = "Cancelled"
                child = self._child(parent, "CANCEL", parent.amount, "Cancelled")
                self._emit(child)
                return 200, self._response(child)
        except ValidationErrors as exc:
            return 400, exc.errors

    async def refund(self, body: dict[str, Any]) -> Answer:
        try:
            transaction_id = _transaction_id(body)
            requested = _optional_amount(body)
            async with self._lock:
                target = self._refund_target(self.transactions.get(transaction_id))
                if target is None:
                    return refusal("GTW_2103", "Reference transaction not found.", 404)
                if isinstance(target, tuple):
                    return target
                remaining = target.amount - target.refunded
                if remaining <= 0:
                    return refusal("GTW_2045", "Transaction already refunded.")
                amount = remaining if requested is None else requested
                if amount < remaining and not self.rules.partial_refund_enabled:
                    return refusal("GTW_2107", "Partial refund not allowed.")
                if amount > remaining:
                    return refusal("GTW_2108", "Refund amount exceeds the remaining amount.")
                target.refunded += amount
                target.status = (
                    "Refunded" if target.refunded == target.amount else ("Partially Refunded")
                )
                child = self._child(target, "REFUND", amount, "Refunded")
                self._emit(child)
                return 200, self._response(child)
        except ValidationErrors as exc:
            return 400, exc.errors

    def _refund_target(self, found: Transaction | None) -> Transaction | Answer | None:
        found = self._settle_pending(found)
        if found is None:
            return None
        if found.type == "AUTHORIZATION":
            # Refunding an authorization means refunding its capture, if it has one.
            captures = [
                self.transactions[child]
                for child in found.children
                if self.transactions[child].type == "CAPTURE"
            ]
            if not captures:
                return refusal("GTW_2100", "Refund needs a settled sale or capture.")
            found = captures[-1]
        if found.type not in {"SALE", "CAPTURE"} or not found.outcome.approved:
            return refusal("GTW_2100", "Refund needs a settled sale or capture.")
        return found

    # --- lookups -----------------------------------------------------------------------------

    async def inquiry(self, transaction_id: int) -> Answer:
        async with self._lock:
            transaction = self._settle_pending(self.transactions.get(transaction_id))
            if transaction is None:
                return refusal("GTW_2103", "Reference transaction not found.", 404)
            body = self._response(transaction)
            body.update(
                transactionType=transaction.type,
                status=transaction.status,
                amount=transaction.amount,
                currency=transaction.currency,
            )
            return 200, body

    async def get_transaction(self, transaction_id: int) -> Answer:
        async with self._lock:
            transaction = self._settle_pending(self.transactions.get(transaction_id))
            if transaction is None:
                return refusal("GTW_2103", "Reference transaction not found.", 404)
            return 200, self._record(transaction)

    async def get_order(self, query: dict[str, str]) -> Answer:
        async with self._lock:
            root = self._find_order_root(query)
            if root is None:
                return refusal("GTW_2103", "Order not found.", 404)
            record = self._record(root)
            record["orderAmount"] = root.amount
            return 200, record

    def _find_order_root(self, query: dict[str, str]) -> Transaction | None:
        if query.get("clientOrderId") in self.client_order_ids:
            found = self.transactions.get(self.client_order_ids[query["clientOrderId"]])
        elif query.get("transactionId", "").isdigit():
            found = self.transactions.get(int(query["transactionId"]))
        elif query.get("id", "").isdigit():
            order_id = int(query["id"])
            found = next((t for t in self.transactions.values() if t.order_id == order_id), None)
        else:
            found = None
        while found is not None and found.parent_id is not None:
            found = self.transactions[found.parent_id]
        return self._settle_pending(found)

    async def resolve_pending(self, transaction_id: int, approve: bool) -> Answer:
        async with self._lock:
            transaction = self.transactions.get(transaction_id)
            if transaction is None or not transaction.outcome.pending:
                return refusal("GTW_2103", "No pending transaction with that id.", 404)
            self._finish_pending(transaction, approve)
            return 200, self._response(transaction)

    async def charge_back(self, transaction_id: int, amount: Decimal | None) -> Answer:
        """The cardholder's bank disputes a settled sale or capture (a control, not NetValve's
        API): recorded in the transaction's chargebackData, then a CHARGEBACK webhook."""
        async with self._lock:
            transaction = self.transactions.get(transaction_id)
            if transaction is None or transaction.type not in {"SALE", "CAPTURE"}:
                return refusal("GTW_2103", "No settled sale or capture with that id.", 404)
            disputed = transaction.amount if amount is None else amount
            transaction.chargebacks.append(disputed)
            data = self._webhook_data(transaction)
            data.update(
                amount=disputed,
                chargebackTransactionType="Chargeback",
                chargebackSource="CB-Alert",
            )
            self._events("CHARGEBACK", data)
            return 200, self._record(transaction)

    # --- hosted payment page -----------------------------------------------------------------

    async def hpp_order(self, body: dict[str, Any], base_url: str) -> Answer:
        try:
            amount = _amount(body)
            currency = _currency(body)
            _routing(body)
            missing = [
                name for name in ("successUrl", "cancelUrl", "failedUrl") if not body.get(name)
            ]
            if missing:
                raise ValidationErrors(
                    [field_error("GTW_2075", name, "Invalid URL.") for name in missing]
                )
        except ValidationErrors as exc:
            return 400, exc.errors
        async with self._lock:
            client_order_id = body.get("clientOrderId")
            if client_order_id is not None and str(client_order_id) in self.client_order_ids:
                return refusal("GTW_2065", "Duplicate clientOrderId.")
            order_id = self._next_order
            self._next_order += 1
        token = secrets.token_urlsafe(24)
        return 200, {
            "traceID": str(uuid.uuid4()),
            "responseTimestamp": timestamp(),
            "orderId": order_id,
            "responseCode": "GTW_1000",
            "responseMessage": "Transaction Approved/ Request Successful.",
            "responseCodeType": "APPROVED",
            "orderState": "CREATED",
            "redirectUrl": f"{base_url}/hpf/demo?paymentToken={token}&language=en",
            "amount": amount,
            "currency": currency,
        }

    # --- internals ---------------------------------------------------------------------------

    def _new(
        self,
        kind: str,
        amount: Decimal,
        currency: str,
        outcome: Outcome,
        status: str,
        client_order_id: object,
        routing: dict[str, Any],
        card: Card | None,
        parent: Transaction | None = None,
    ) -> Transaction:
        transaction = Transaction(
            id=self._next_id,
            type=kind,
            amount=amount,
            currency=currency,
            outcome=outcome,
            status=status,
            order_id=parent.order_id if parent else self._next_order,
            client_order_id=str(client_order_id) if client_order_id is not None else None,
            routing=routing,
            card=card,
            parent_id=parent.id if parent else None,
            channel=parent.channel if parent else "HOSTED_PAYMENT_FIELDS",
        )
        self._next_id += 1
        if parent is None:
            self._next_order += 1
        else:
            parent.children.append(transaction.id)
        self.transactions[transaction.id] = transaction
        return transaction

    def _child(self, parent: Transaction, kind: str, amount: Decimal, status: str) -> Transaction:
        return self._new(
            kind,
            amount,
            parent.currency,
            cards.APPROVED,
            status,
            parent.client_order_id,
            parent.routing,
            parent.card,
            parent,
        )

    def _settle_pending(self, transaction: Transaction | None) -> Transaction | None:
        """A pending payment settles (approved) once `pending_seconds` have passed."""
        if (
            transaction is not None
            and transaction.outcome.pending
            and time.monotonic() - transaction.created_monotonic >= self.rules.pending_seconds
        ):
            self._finish_pending(transaction, approve=True)
        return transaction

    def _finish_pending(self, transaction: Transaction, approve: bool) -> None:
        transaction.outcome = cards.APPROVED if approve else cards.DO_NOT_HONOUR
        transaction.status = _initial_status(transaction.type, transaction.outcome)
        self._emit(transaction)

    def _response(self, transaction: Transaction) -> dict[str, Any]:
        outcome = transaction.outcome
        body: dict[str, Any] = {
            "traceID": transaction.trace_id,
            "responseTimestamp": timestamp(),
            "orderId": transaction.order_id,
            "transactionID": transaction.id,
            "responseCode": outcome.response_code,
            "responseMessage": outcome.response_message,
            "responseCodeType": outcome.response_code_type,
            "transactionType": transaction.type,
            "clientId": self._client_id,
            **{k: v for k, v in transaction.routing.items() if k in {"midId", "netvalveMidId"}},
        }
        if outcome.bank_code:
            body.update(
                bankResponseCode=outcome.bank_code, bankResponseMessage=outcome.bank_message
            )
        if transaction.card is not None:
            body.update(
                paymentMethod="CARD",
                cardNumber=transaction.card.masked,
                cardType=cards.card_type(transaction.card.number),
                cardExpiryMonth=transaction.card.expire_month,
                cardExpiryYear=transaction.card.expire_year,
                paymentChannelType=transaction.channel,
            )
        if outcome.approved:
            body.update(
                authCode=transaction.auth_code, bankTransactionId=transaction.bank_transaction_id
            )
        return body

    def _record(self, transaction: Transaction) -> dict[str, Any]:
        related = [self.transactions[child] for child in transaction.children]
        return {
            "netvalveID": transaction.id,
            "orderId": transaction.order_id,
            "clientOrderId": transaction.client_order_id,
            "transactionReference": transaction.parent_id,
            "createdDate": transaction.created_at.isoformat(),
            "status": transaction.status,
            "settlementStatus": transaction.status,
            "paymentMethod": "CARD",
            "paymentType": "CARD",
            "transactionType": transaction.type,
            "amount": transaction.amount,
            "currency": transaction.currency,
            "cardNumber": transaction.card.masked if transaction.card else None,
            "cardType": cards.card_type(transaction.card.number) if transaction.card else None,
            "responseCode": transaction.outcome.response_code,
            "responseMessage": transaction.outcome.response_message,
            "responseCodeType": transaction.outcome.response_code_type,
            "refundBalancedAmount": transaction.amount - transaction.refunded,
            "isPartialRefund": Decimal(0) < transaction.refunded < transaction.amount,
            "isPartialRefundAllowed": self.rules.partial_refund_enabled,
            "chargebackData": [
                {"amount": amount, "currency": transaction.currency, "status": "OPEN"}
                for amount in transaction.chargebacks
            ],
            "transactions": [
                {
                    "transactionId": child.id,
                    "transactionType": child.type,
                    "amount": child.amount,
                    "currency": child.currency,
                    "status": child.status,
                    "responseCode": child.outcome.response_code,
                    "responseCodeType": child.outcome.response_code_type,
                    "transactionReference": transaction.id,
                    "createdDate": child.created_at.isoformat(),
                }
                for child in related
            ],
        }

    def _emit(self, transaction: Transaction) -> None:
        self._events(_event_name(transaction), self._webhook_data(transaction))

    def _webhook_data(self, transaction: Transaction) -> dict[str, Any]:
        outcome = transaction.outcome
        data: dict[str, Any] = {
            "transactionType": transaction.type,
            "clientOrderId": transaction.client_order_id,
            "orderId": str(transaction.order_id),
            "traceId": str(uuid.uuid4()),
            "midId": transaction.routing.get("midId"),
            "netvalveMidId": transaction.routing.get("netvalveMidId", ""),
            "siteId": transaction.routing.get("siteId"),
            "clientId": self._client_id,
            "responseTimestamp": webhook_timestamp(),
            "transactionId": transaction.id,
            "responseCode": outcome.response_code,
            "responseMessage": outcome.response_message,
            "responseCodeType": outcome.response_code_type,
            "amount": transaction.amount,
            "paymentType": "CARD",
        }
        if transaction.card is not None:
            data.update(
                cardNumber=transaction.card.masked,
                cardType=cards.card_type(transaction.card.number),
                cardExpiryMonth=transaction.card.expire_month,
                cardExpiryYear=transaction.card.expire_year,
            )
        if outcome.approved:
            data.update(
                authCode=transaction.auth_code, bankTransactionId=transaction.bank_transaction_id
            )
        return data


_EVENT_NAMES = {
    "SALE": ("PURCHASED", "PURCHASE_FAILED", "PURCHASE_PENDING"),
    "AUTHORIZATION": ("AUTHORISED", "AUTHORISATION_FAILED", "AUTHORISATION_PENDING"),
    "CAPTURE": ("CAPTURED", "CAPTURE_FAILED", "CAPTURE_PENDING"),
    "CANCEL": ("CANCELLED", "CANCELLATION_FAILED", "CANCELLATION_PENDING"),
    "REFUND": ("REFUNDED", "REFUND_FAILED", "REFUND_PENDING"),
}


def _state_refusal(parent: Transaction) -> Answer | None:
    """Why a capture or cancel cannot act on `parent`; None for a live authorization."""
    if parent.outcome.pending:
        return refusal("GTW_2049", "Transaction pending.")
    if not parent.outcome.approved:
        return refusal("GTW_2100", "Operation not allowed for this transaction.")
    if parent.type == "SALE" or parent.status in {"Settled", "PARTIALLY_SETTLED"}:
        return refusal("GTW_2046", "Transaction already captured.")
    if parent.status == "Cancelled":
        return refusal("GTW_2047", "Transaction already cancelled.")
    if parent.type != "AUTHORIZATION":
        return refusal("GTW_2100", "Operation not allowed for this transaction.")
    return None


def _event_name(transaction: Transaction) -> str:
    approved, failed, pending = _EVENT_NAMES[transaction.type]
    if transaction.outcome.pending:
        return pending
    return approved if transaction.outcome.approved else failed


def _initial_status(kind: str, outcome: Outcome) -> str:
    if outcome.pending:
        return "Pending"
    if not outcome.approved:
        return "Declined"
    return "Authorised" if kind == "AUTHORIZATION" else "Settled"


def parse_body(raw: bytes) -> dict[str, Any] | None:
    """Amounts keep their exact decimals (`parse_float=Decimal`); None if not a JSON object."""
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, InvalidOperation):
        return None
    return body if isinstance(body, dict) else None
