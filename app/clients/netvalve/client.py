"""`NetvalveClient`: NetValve's payment API (shared/NETVALVE_API.md) over the shared httpx client.

Every call returns exactly one result (results.py) and never raises for a gateway outcome.
`NetvalveConfigurationError` is raised only for a call this configuration cannot make (no MID
or site for the currency), before anything is sent.

Secrets (the API key, the basic-auth password) live in headers only and are never logged; the
log line per call carries the operation, status, outcome, code and timing, never a body.
"""

import base64
import dataclasses
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
import structlog

from app.clients.netvalve.classify import classify
from app.clients.netvalve.requests import HppOrderRequest, PaymentRequest
from app.clients.netvalve.results import (
    Approved,
    AuthenticationFailed,
    Declined,
    NetvalveResult,
    Operation,
    Pending,
    Unavailable,
    UnknownOutcome,
    ValidationFailed,
    outcome_name,
)
from app.clients.netvalve.values import as_text
from app.core import metrics
from app.core.config import Settings
from app.core.money import json_with_amounts, normalise_currency

log = structlog.get_logger(__name__)


class NetvalveConfigurationError(Exception):
    """This configuration cannot make the call (e.g. no MID or site for the currency)."""


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
        """`HpfSessionInit` when NetValve opened a session; any other result otherwise."""
        return await self._get("hpf_session", self._hpf, "/hpf/initializeSession", {})

    async def create_hpp_order(self, request: HppOrderRequest) -> NetvalveResult:
        """`HppOrder` when NetValve created the order and named its page."""
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
        """Signs in with the basic-auth credentials, then lists the account's HPF scripts:
        `HpfScriptList` when NetValve listed them."""
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
        token = (
            as_text(signed_in.body.get("accessToken")) if isinstance(signed_in, Approved) else None
        )
        if token is None:
            return signed_in
        request = self._http.build_request(
            "GET",
            backoffice + "/backoffice/hpf/script",
            headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
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
            result = classify(operation, response.status_code, response.content)
        elapsed = time.perf_counter() - started
        result = dataclasses.replace(result, elapsed_ms=round(elapsed * 1000, 2))
        metrics.NETVALVE_CALL_SECONDS.labels(operation, outcome_name(result)).observe(elapsed)
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
        "outcome": outcome_name(result),
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
