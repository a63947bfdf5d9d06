"""Hosted payment fields and the hosted payment page: sessions, card tokenisation, HPP orders,
and the SDK and demo page a browser loads."""

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from app.sandbox import cards, validation
from app.sandbox.records import HpfToken
from app.sandbox.store import SandboxStore
from app.sandbox.validation import ValidationErrors
from app.sandbox.wire import Answer, Body, field_error, refusal, timestamp

DEMO_PAGE = (Path(__file__).parent / "demo.html").read_text(encoding="utf-8")
SDK_SCRIPT = (Path(__file__).parent / "sdk.js").read_text(encoding="utf-8")
SDK_VERSION = "1.0.0"
HPF_TOKEN_CREATED = ("GTW_1003", "Hosted Payment Fields Token Created Successful.")


async def initialize_session(store: SandboxStore, base_url: str) -> Answer:
    ttl = store.rules.token_ttl_seconds
    async with store.lock:
        token = str(uuid.uuid4())
        issued = int(time.time())
        store.tokens[token] = HpfToken(token, time.monotonic() + ttl)
    claims = {"jti": token, "iat": issued, "iss": "NETVALVE", "exp": issued + round(ttl)}
    jwt = _jwt(store.jwt_secret, claims)
    return 200, {
        "traceID": str(uuid.uuid4()),
        "responseTimestamp": timestamp(),
        "responseCode": HPF_TOKEN_CREATED[0],
        "responseMessage": HPF_TOKEN_CREATED[1],
        "responseCodeType": "APPROVED",
        "netvalveScriptSrc": (
            f"{base_url}/hpf/sdk.js?version={SDK_VERSION}&paymentToken={token}&jwtToken={jwt}"
        ),
        "version": SDK_VERSION,
        "integrity": str(uuid.uuid4()),
        "paymentToken": token,
        "jwtToken": jwt,
    }


def _jwt(secret: bytes, claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def tokenize(store: SandboxStore, body: dict[str, Any]) -> Answer:
    try:
        card = validation.card(body)
        async with store.lock:
            token = live_token(store, body.get("paymentToken"))
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


def live_token(store: SandboxStore, value: object) -> HpfToken:
    """The HPF token `value` names, if it can still pay; call with `store.lock` held."""
    token = store.tokens.get(str(value)) if value else None
    if token is None or token.used or token.expires_at < time.monotonic():
        state = "unknown" if token is None else "used" if token.used else "expired"
        raise ValidationErrors(
            [field_error("GTW_2063", "paymentToken", f"Payment token is {state}.")]
        )
    return token


async def hpp_order(store: SandboxStore, body: dict[str, Any], base_url: str) -> Answer:
    try:
        amount = validation.amount(body)
        currency = validation.currency(body)
        validation.routing(body)
        _require_return_urls(body)
    except ValidationErrors as exc:
        return 400, exc.errors
    async with store.lock:
        client_order_id = body.get("clientOrderId")
        if client_order_id is not None and str(client_order_id) in store.client_order_ids:
            return refusal("GTW_2065", "Duplicate clientOrderId.")
        order_id = store.take_order_id()
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


def _require_return_urls(body: dict[str, Any]) -> None:
    missing = [name for name in ("successUrl", "cancelUrl", "failedUrl") if not body.get(name)]
    if missing:
        raise ValidationErrors([field_error("GTW_2075", name, "Invalid URL.") for name in missing])


def demo_page(session: Body, token_ttl_seconds: float) -> str:
    """The demo page for the session `initialize_session` just answered."""
    token = str(session["paymentToken"]) if isinstance(session, dict) else ""
    ttl = f"{token_ttl_seconds:g}"
    return DEMO_PAGE.replace("{{PAYMENT_TOKEN}}", token).replace("{{TOKEN_TTL}}", ttl)
