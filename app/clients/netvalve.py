"""A small typed client for NetValve's payment API (shared/NETVALVE_API.md).

Every call returns exactly one result type and never raises for a gateway outcome:

    NetvalveResult
     ├── Approved             the gateway did it (GTW_1xxx other than pending)
     ├── Pending              GTW_1002: resolve later with `inquiry`
     ├── Declined             soft or hard decline, or a refused operation (code + message)
     ├── ValidationFailed     HTTP 400 with NetValve's JSON array of field errors
     ├── AuthenticationFailed HTTP 401/403, GTW_9001/9002/2082
     ├── UnknownOutcome       sent, but no trustworthy answer: read timeout, connection reset,
     │                        5xx, 429, unparseable body. It may have been processed: never
     │                        resend a sale; ask `inquiry` instead.
     └── Unavailable          never sent (connection refused, connect or pool timeout); the only
                              result that is safe to retry automatically.

`NetvalveConfigurationError` is raised only for a call this configuration cannot make (no MID
or site for the currency), before anything is sent.

Secrets (the API key, the basic-auth password) live in headers only and are never logged; the
log line per call carries the operation, status, outcome, code and timing, never a body.
"""

import base64
import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import httpx
import structlog

from app.core import metrics
from app.core.config import Settings
from app.core.money import json_with_amounts, normalise_currency

__all__ = [
    "Approved",
    "AuthenticationFailed",
    "Customer",
    "Declined",
    "FieldError",
    "HppOrderRequest",
    "NetvalveClient",
    "NetvalveConfigurationError",
    "NetvalveResult",
    "PaymentRequest",
    "Pending",
    "TransactionRecord",
    "Unavailable",
    "UnknownOutcome",
    "ValidationFailed",
    "as_decimal",
    "as_int",
    "is_not_found",
    "read_record",
]

log = structlog.get_logger(__name__)

PENDING_CODE = "GTW_1002"
AUTH_FAILURE_CODES = frozenset({"GTW_9001", "GTW_9002", "GTW_2082"})

Operation = Literal[
    "sale",
    "authorize",
    "capture",
    "cancel",
    "refund",
    "inquiry",
    "get_transaction",
    "get_order",
    "hpf_session",
    "hpp_order",
    "backoffice_sign_in",
    "backoffice_scripts",
]
# Lookups answer 200 with a record whose own response code describes the transaction, not the
# lookup; for them any 200 JSON object is a successful read.
_LOOKUPS: frozenset[Operation] = frozenset(
    {"get_transaction", "get_order", "backoffice_sign_in", "backoffice_scripts"}
)


class NetvalveConfigurationError(Exception):
    """This configuration cannot make the call (e.g. no MID or site for the currency)."""


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Result:
    operation: Operation
    http_status: int | None = None
    elapsed_ms: float = 0.0

    @property
    def retry_safe(self) -> bool:
        """True only when the request provably never reached NetValve."""
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answered(_Result):
    """NetValve answered with a JSON object; `body` is it, card numbers masked by NetValve."""

    body: Mapping[str, Any]
    response_code: str | None = None
    response_message: str | None = None
    response_code_type: str | None = None

    @property
    def transaction_id(self) -> int | None:
        value = self.body.get("transactionID", self.body.get("transactionId"))
        return as_int(value)

    @property
    def order_id(self) -> int | None:
        return as_int(self.body.get("orderId"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Approved(_Answered):
    """NetValve did it (GTW_1xxx other than pending); for lookups, the record was read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending(_Answered):
    """GTW_1002: NetValve has not decided yet; ask `inquiry` later."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Declined(_Answered):
    @property
    def hard(self) -> bool:
        """Hard declines will not succeed on retry with the same card (3000-range codes)."""
        return (self.response_code_type or "").upper() == "HARD DECLINE"


@dataclass(frozen=True, slots=True)
class FieldError:
    response_code: str
    response_message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationFailed(_Result):
    errors: tuple[FieldError, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticationFailed(_Result):
    response_code: str | None = None
    response_message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownOutcome(_Result):
    reason: str
    """`timeout`, `connection_lost`, `http_5xx`, `http_429`, `malformed_body`, ..."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unavailable(_Result):
    reason: str

    @property
    def retry_safe(self) -> bool:
        return True


NetvalveResult = (
    Approved
    | Pending
    | Declined
    | ValidationFailed
    | AuthenticationFailed
    | UnknownOutcome
    | Unavailable
)


# --- records ---------------------------------------------------------------------------------

RecordOutcome = Literal["approved", "pending", "declined"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionRecord:
    """NetValve's own record of one transaction: GET /transaction, an order's root from GET
    /order, or one of the `transactions[]` it lists. The proof a webhook is checked against.

    `kind` is NetValve's transactionType (SALE, AUTHORIZATION, CAPTURE, REFUND, CANCEL, ...);
    `parent_id` its transactionReference; `chargebacks` the amounts in its chargebackData.
    """

    transaction_id: int
    kind: str
    outcome: RecordOutcome
    amount: Decimal | None
    currency: str | None
    client_order_id: str | None
    parent_id: int | None
    response_code: str | None = None
    response_message: str | None = None
    response_code_type: str | None = None
    status: str | None = None
    created: str | None = None
    card_number: str | None = None
    card_type: str | None = None
    chargebacks: tuple[Decimal, ...] = ()
    children: tuple["TransactionRecord", ...] = ()

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"


def is_not_found(result: NetvalveResult) -> bool:
    """NetValve answered that it has no such transaction or order (GTW_2103, HTTP 404)."""
    return isinstance(result, Declined) and result.http_status == 404


def read_record(result: NetvalveResult) -> TransactionRecord | None:
    """The record in a lookup's answer; None if there is no readable record in it."""
    if not isinstance(result, Approved | Pending | Declined) or result.http_status != 200:
        return None
    return _record(result.body, parent=None)


def _record(body: Mapping[str, Any], parent: TransactionRecord | None) -> TransactionRecord | None:
    transaction_id = as_int(
        body.get("netvalveID", body.get("transactionId", body.get("transactionID")))
    )
    kind, outcome = body.get("transactionType"), _record_outcome(body)
    if transaction_id is None or not isinstance(kind, str) or outcome is None:
        return None
    currency = body.get("currency")
    client_order_id = body.get("clientOrderId")
    record = TransactionRecord(
        transaction_id=transaction_id,
        kind=kind.upper(),
        outcome=outcome,
        amount=as_decimal(body.get("amount")),
        currency=str(currency).upper() if currency else (parent.currency if parent else None),
        client_order_id=(
            str(client_order_id)
            if client_order_id not in (None, "")
            else (parent.client_order_id if parent else None)
        ),
        parent_id=as_int(body.get("transactionReference"))
        or (parent.transaction_id if parent else None),
        response_code=_text_or_none(body.get("responseCode")),
        response_message=_text_or_none(body.get("responseMessage")),
        response_code_type=_text_or_none(body.get("responseCodeType")),
        status=_text_or_none(body.get("status")),
        created=_text_or_none(body.get("createdDate")),
        card_number=_text_or_none(body.get("cardNumber")),
        card_type=_text_or_none(body.get("cardType")),
        chargebacks=tuple(
            amount
            for item in body.get("chargebackData") or ()
            if isinstance(item, Mapping) and (amount := as_decimal(item.get("amount"))) is not None
        ),
    )
    children = body.get("transactions") if parent is None else None
    if not isinstance(children, list):
        return record
    read = (_record(child, record) for child in children if isinstance(child, Mapping))
    return dataclasses.replace(record, children=tuple(child for child in read if child))


def _record_outcome(body: Mapping[str, Any]) -> RecordOutcome | None:
    code_type = str(body.get("responseCodeType") or "").upper()
    if code_type:
        return (
            "approved"
            if code_type == "APPROVED"
            else "pending"
            if code_type == "PENDING"
            else "declined"
        )
    code = str(body.get("responseCode") or "")
    if not code:
        return None
    if code == PENDING_CODE:
        return "pending"
    return "approved" if _in_range(code, 1000, 1999) else "declined"


def as_decimal(value: object) -> Decimal | None:
    """A finite decimal from a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return None
    return amount if amount.is_finite() else None


def _text_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Customer:
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None
    country_code: str | None = None
    phone: str | None = None
    ip: str | None = None

    def wire(self) -> dict[str, str]:
        fields = {
            "customerEmail": self.email,
            "customerFirstName": self.first_name,
            "customerLastName": self.last_name,
            "customerAddress": self.address,
            "customerCity": self.city,
            "customerState": self.state,
            "customerZipCode": self.zip_code,
            "customerCountryCode": self.country_code.upper() if self.country_code else None,
            "customerPhone": self.phone,
            "customerIp": self.ip,
        }
        return {name: value for name, value in fields.items() if value}


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRequest:
    """A sale or authorization with a hosted-payment-fields token; card data never passes here."""

    amount: Decimal
    currency: str
    client_order_id: str
    payment_token: str
    customer: Customer = field(default_factory=Customer)
    order_description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HppOrderRequest:
    amount: Decimal
    currency: str
    client_order_id: str
    success_url: str
    cancel_url: str
    failed_url: str
    pending_url: str | None = None
    mode: Literal["SALE", "AUTHORIZATION"] = "SALE"
    customer: Customer = field(default_factory=Customer)
    order_description: str | None = None


# --- wire helpers ----------------------------------------------------------------------------


MAX_BIGINT = 2**63 - 1


def as_int(value: object) -> int | None:
    """A NetValve id, which arrives as a JSON integer or as a digit string; None otherwise.

    Ids are positive and fit PostgreSQL's BIGINT; anything else cannot be one (and would fail
    to bind). Only ASCII digits count: "²".isdigit() is true, but int("²") raises."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and 0 < value <= MAX_BIGINT:
        return value
    return None


def _parse(content: bytes) -> object:
    try:
        # Amounts stay exact: 44.00 is read as Decimal("44.00"), never as a float.
        return json.loads(content, parse_float=Decimal)
    except ValueError:
        return None


def _classify(operation: Operation, status: int, content: bytes) -> NetvalveResult:
    body = _parse(content)
    if status >= 500 or status == 429:
        # 429 also means "duplicate request detected": the first one may have gone through.
        return UnknownOutcome(operation=operation, http_status=status, reason=f"http_{status}")
    if status in (401, 403):
        code, message = _code_and_message(body)
        return AuthenticationFailed(
            operation=operation, http_status=status, response_code=code, response_message=message
        )
    if status < 300 and operation == "backoffice_scripts" and isinstance(body, list):
        return Approved(operation=operation, http_status=status, body={"items": body})
    if status < 300 and not isinstance(body, dict):
        return UnknownOutcome(operation=operation, http_status=status, reason="malformed_body")
    if status == 400 and isinstance(body, list):
        errors = tuple(
            FieldError(str(item.get("responseCode")), str(item.get("responseMessage")))
            for item in body
            if isinstance(item, dict)
        )
        return ValidationFailed(operation=operation, http_status=status, errors=errors)
    if not isinstance(body, dict):
        # Any other 4xx: refused before processing, even without a readable body.
        return Declined(
            operation=operation, http_status=status, body={}, response_message=f"HTTP {status}"
        )
    return _classify_object(operation, status, body)


def _code_and_message(body: object) -> tuple[str | None, str | None]:
    if isinstance(body, dict):
        code, message = body.get("responseCode"), body.get("responseMessage")
        return (str(code) if code else None, str(message) if message else None)
    return None, None


def _classify_object(operation: Operation, status: int, body: dict[str, Any]) -> NetvalveResult:
    code, message = _code_and_message(body)
    code_type = body.get("responseCodeType")
    common: dict[str, Any] = {
        "operation": operation,
        "http_status": status,
        "body": body,
        "response_code": code,
        "response_message": message,
        "response_code_type": str(code_type) if code_type else None,
    }
    if code in AUTH_FAILURE_CODES:
        return AuthenticationFailed(
            operation=operation, http_status=status, response_code=code, response_message=message
        )
    if status >= 300:
        return Declined(**common)
    if operation in _LOOKUPS:
        return Approved(**common)
    if code is None:
        return UnknownOutcome(operation=operation, http_status=status, reason="no_response_code")
    kind = str(code_type or "").upper()
    if code == PENDING_CODE or kind == "PENDING":
        return Pending(**common)
    if kind == "APPROVED" or (not kind and _in_range(code, 1000, 1999)):
        return Approved(**common)
    return Declined(**common)


def _in_range(code: str, low: int, high: int) -> bool:
    _, _, number = code.partition("_")
    return number.isdigit() and low <= int(number) <= high


# --- the client ------------------------------------------------------------------------------


class NetvalveClient:
    """NetValve's payment API over the application's shared `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self._http = http
        self._settings = settings
        self._api = settings.netvalve_url("api")
        self._hpp = settings.netvalve_url("hpp")
        self._hpf = settings.netvalve_url("hpf")
        self._headers = self._auth_headers(settings)

    @staticmethod
    def _auth_headers(settings: Settings) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if settings.netvalve_client_id:
            headers["netvalve-client-id"] = settings.netvalve_client_id
        if settings.netvalve_api_key:
            headers["netvalve-api-key"] = settings.netvalve_api_key.get_secret_value()
        username = settings.netvalve_basic_auth_username
        password = settings.netvalve_basic_auth_password
        if username and password:
            pair = f"{username}:{password.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers

    def routing(self, currency: str) -> dict[str, Any]:
        """`midId` / `netvalveMidId` for the currency's MID, else `siteId` for smart routing."""
        code = normalise_currency(currency)
        mid = self._settings.configured_mids().get(code)
        if mid is not None:
            return {"midId": int(mid)} if mid.isdigit() else {"netvalveMidId": mid}
        if self._settings.netvalve_site_id:
            return {"siteId": self._settings.netvalve_site_id}
        raise NetvalveConfigurationError(
            f"no NETVALVE_MID_ID_{code} and no NETVALVE_SITE_ID: cannot route {code}"
        )

    # payments

    async def sale(self, request: PaymentRequest) -> NetvalveResult:
        return await self._post("sale", self._api, "/sale", self._payment_body(request))

    async def authorize(self, request: PaymentRequest) -> NetvalveResult:
        return await self._post("authorize", self._api, "/authorize", self._payment_body(request))

    async def capture(
        self, transaction_id: int, amount: Decimal, *, final_capture: bool = False
    ) -> NetvalveResult:
        body: dict[str, Any] = {"transactionID": transaction_id, "amount": amount}
        if final_capture:
            body["captureOptions"] = {"finalCapture": True}
        return await self._post("capture", self._api, "/capture", body)

    async def cancel(self, transaction_id: int) -> NetvalveResult:
        return await self._post("cancel", self._api, "/cancel", {"transactionID": transaction_id})

    async def refund(self, transaction_id: int, amount: Decimal | None = None) -> NetvalveResult:
        """A partial refund of `amount`, or of everything left when `amount` is None."""
        body: dict[str, Any] = {"transactionID": transaction_id}
        if amount is not None:
            body["amount"] = amount
        return await self._post("refund", self._api, "/refund", body)

    # lookups

    async def inquiry(self, transaction_id: int) -> NetvalveResult:
        return await self._get("inquiry", self._api, "/inquiry", {"transactionId": transaction_id})

    async def get_transaction(self, transaction_id: int) -> NetvalveResult:
        return await self._get("get_transaction", self._api, "/transaction", {"id": transaction_id})

    async def get_order(
        self,
        *,
        client_order_id: str | None = None,
        order_id: int | None = None,
        transaction_id: int | None = None,
    ) -> NetvalveResult:
        params = {
            "clientOrderId": client_order_id,
            "id": order_id,
            "transactionId": transaction_id,
        }
        chosen = {name: value for name, value in params.items() if value is not None}
        if not chosen:
            raise ValueError("get_order needs client_order_id, order_id or transaction_id")
        return await self._get("get_order", self._api, "/order", chosen)

    # hosted pages

    async def initialize_hpf_session(self) -> NetvalveResult:
        return await self._get("hpf_session", self._hpf, "/hpf/initializeSession", {})

    async def create_hpp_order(self, request: HppOrderRequest) -> NetvalveResult:
        body: dict[str, Any] = {
            "amount": request.amount,
            "currency": normalise_currency(request.currency),
            "mode": request.mode,
            "clientOrderId": request.client_order_id,
            "successUrl": request.success_url,
            "cancelUrl": request.cancel_url,
            "failedUrl": request.failed_url,
            **self.routing(request.currency),
        }
        if request.pending_url:
            body["pendingUrl"] = request.pending_url
        if request.order_description:
            body["orderDesc"] = request.order_description
        customer = request.customer.wire()
        if customer:
            body["customerDetails"] = customer
        return await self._post("hpp_order", self._hpp, "/hpp/order", body)

    # back office (undocumented; seen in third-party integrations, NETVALVE_API.md §9)

    async def backoffice_hpf_scripts(self) -> NetvalveResult:
        """Signs in with the basic-auth credentials, then lists the account's HPF scripts."""
        username = self._settings.netvalve_basic_auth_username
        password = self._settings.netvalve_basic_auth_password
        if not (username and password):
            raise NetvalveConfigurationError("the back office needs NETVALVE_BASIC_AUTH_*")
        backoffice = self._settings.netvalve_url("backoffice")
        signed_in = await self._post(
            "backoffice_sign_in",
            backoffice,
            "/backoffice/users/sign-in",
            {"userName": username, "password": password.get_secret_value(), "checkForBot": "net"},
        )
        if not isinstance(signed_in, Approved) or not signed_in.body.get("accessToken"):
            return signed_in
        request = self._http.build_request(
            "GET",
            backoffice + "/backoffice/hpf/script",
            headers={
                "Accept": "application/json",
                "Authorization": f"Bearer {signed_in.body['accessToken']}",
            },
        )
        return await self._send("backoffice_scripts", request)

    # transport

    def _payment_body(self, request: PaymentRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "amount": request.amount,
            "currency": normalise_currency(request.currency),
            # Sent although the docs' examples omit it: the OpenAPI file marks it required.
            "paymentType": "CARD",
            "paymentToken": request.payment_token,
            "clientOrderId": request.client_order_id,
            **self.routing(request.currency),
            **request.customer.wire(),
        }
        if request.order_description:
            body["orderDesc"] = request.order_description
        return body

    async def _post(
        self, operation: Operation, base: str, path: str, body: Mapping[str, Any]
    ) -> NetvalveResult:
        request = self._http.build_request(
            "POST",
            base + path,
            content=json_with_amounts(body),
            headers={**self._headers, "Content-Type": "application/json"},
        )
        return await self._send(operation, request)

    async def _get(
        self, operation: Operation, base: str, path: str, params: Mapping[str, Any]
    ) -> NetvalveResult:
        request = self._http.build_request("GET", base + path, params=params, headers=self._headers)
        return await self._send(operation, request)

    async def _send(self, operation: Operation, request: httpx.Request) -> NetvalveResult:
        started = time.perf_counter()
        try:
            response = await self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left this process: safe to retry.
            result: NetvalveResult = Unavailable(operation=operation, reason=_reason(exc))
        except httpx.TimeoutException as exc:
            result = UnknownOutcome(operation=operation, reason=_reason(exc))
        except httpx.TransportError as exc:
            result = UnknownOutcome(operation=operation, reason=_reason(exc))
        else:
            result = _classify(operation, response.status_code, response.content)
        elapsed = time.perf_counter() - started
        result = dataclasses.replace(result, elapsed_ms=round(elapsed * 1000, 2))
        metrics.NETVALVE_CALL_SECONDS.labels(operation, type(result).__name__).observe(elapsed)
        _log(result, request)
        return result


def _reason(exc: httpx.TransportError) -> str:
    reasons: dict[type[httpx.TransportError], str] = {
        httpx.ConnectTimeout: "connect_timeout",
        httpx.PoolTimeout: "pool_timeout",
        httpx.ConnectError: "connection_refused",
        httpx.ReadTimeout: "timeout",
        httpx.WriteTimeout: "timeout",
        httpx.RemoteProtocolError: "connection_lost",
        httpx.ReadError: "connection_lost",
        httpx.WriteError: "connection_lost",
    }
    for kind, reason in reasons.items():
        if isinstance(exc, kind):
            return reason
    return type(exc).__name__


def _log(result: NetvalveResult, request: httpx.Request) -> None:
    fields: dict[str, Any] = {
        "operation": result.operation,
        "method": request.method,
        "path": request.url.path,
        "http_status": result.http_status,
        "outcome": type(result).__name__,
        "elapsed_ms": result.elapsed_ms,
    }
    if isinstance(result, Approved | Pending | Declined):
        fields.update(response_code=result.response_code, transaction_id=result.transaction_id)
    elif isinstance(result, ValidationFailed):
        fields["response_codes"] = [error.response_code for error in result.errors]
    elif isinstance(result, AuthenticationFailed):
        fields["response_code"] = result.response_code
    else:
        fields["reason"] = result.reason
    if isinstance(result, Approved | Pending):
        log.info("netvalve.call", **fields)
    else:
        log.warning("netvalve.call", **fields)
