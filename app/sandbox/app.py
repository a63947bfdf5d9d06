"""The sandbox as an ASGI app: NetValve's paths, fields, codes and statuses (see README.md)."""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.money import json_with_amounts
from app.sandbox.faults import FaultMiddleware, FaultRegistry, FaultRule
from app.sandbox.store import Answer, SandboxRules, SandboxStore, parse_body, timestamp
from app.sandbox.webhooks import WebhookConfig, WebhookDispatcher

DEMO_PAGE = (Path(__file__).parent / "demo.html").read_text(encoding="utf-8")
SDK_SCRIPT = (Path(__file__).parent / "sdk.js").read_text(encoding="utf-8")
SDK_VERSION = "1.0.0"
BACKOFFICE_TOKEN_TTL_SECONDS = 3600


def _sri(content: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


# (id, isDefault, createdDate, integrity) of the back office's HPF script records: an older
# record whose integrity no longer matches the served SDK, then the default, which does.
BACKOFFICE_SCRIPTS = (
    (101, False, "2024-06-03T09:15:00.000+00:00", _sri(b"/* an earlier sandbox SDK build */")),
    (102, True, "2024-11-08T12:38:58.140+00:00", _sri(SDK_SCRIPT.encode())),
)


class SandboxSettings(BaseSettings):
    """The sandbox shares NETVALVE_CLIENT_ID / NETVALVE_API_KEY with the service it serves."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    netvalve_client_id: str = "sandbox-client"
    netvalve_api_key: SecretStr = SecretStr("sandbox-api-key")
    netvalve_basic_auth_username: str | None = None
    netvalve_basic_auth_password: SecretStr | None = None
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(default=8090, ge=0, le=65535)
    sandbox_latency_ms: float = Field(default=0, ge=0)
    sandbox_pending_seconds: float = Field(default=5, ge=0)
    sandbox_token_ttl_seconds: float = Field(default=300, gt=0)
    sandbox_partial_capture_enabled: bool = True
    sandbox_partial_refund_enabled: bool = True
    sandbox_webhook_url: str | None = None
    sandbox_webhook_auth_header: str | None = None
    sandbox_webhook_auth_value: SecretStr | None = None
    sandbox_webhook_duplicate_rate: float = Field(default=0, ge=0, le=1)
    sandbox_webhook_reorder: bool = False
    sandbox_webhook_retry_delays: tuple[float, ...] = (0.2, 1.0, 5.0, 15.0)


class WireResponse(Response):
    """JSON with amounts as exact two-decimal numbers, as NetValve writes them."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_with_amounts(content)


def answer(result: Answer) -> WireResponse:
    status, body = result
    return WireResponse(body, status_code=status)


def authentication_failure() -> WireResponse:
    return WireResponse(
        {
            "traceID": str(uuid.uuid4()),
            "responseTimestamp": timestamp(),
            "responseCode": "GTW_9001",
            "responseMessage": "Authentication failure.",
            "responseCodeType": "HARD DECLINE",
        },
        status_code=401,
    )


class AuthenticationRequired(Exception):
    """Raised by `authenticate`; rendered as NetValve's 401 GTW_9001 body."""


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def create_sandbox_app(settings: SandboxSettings | None = None) -> FastAPI:
    settings = settings or SandboxSettings()
    webhooks = WebhookDispatcher(
        WebhookConfig(
            url=settings.sandbox_webhook_url,
            auth_header=settings.sandbox_webhook_auth_header,
            auth_value=(
                settings.sandbox_webhook_auth_value.get_secret_value()
                if settings.sandbox_webhook_auth_value
                else None
            ),
            retry_delays=settings.sandbox_webhook_retry_delays,
            duplicate_rate=settings.sandbox_webhook_duplicate_rate,
            reorder=settings.sandbox_webhook_reorder,
        )
    )
    rules = SandboxRules(
        token_ttl_seconds=settings.sandbox_token_ttl_seconds,
        pending_seconds=settings.sandbox_pending_seconds,
        partial_capture_enabled=settings.sandbox_partial_capture_enabled,
        partial_refund_enabled=settings.sandbox_partial_refund_enabled,
    )
    store = SandboxStore(rules, webhooks.enqueue, settings.netvalve_client_id)
    faults = FaultRegistry(rules=[], latency_ms=settings.sandbox_latency_ms)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        delivery = asyncio.create_task(webhooks.run())
        yield
        # Deliveries first, then the loop that owns their HTTP client, so every connection
        # is closed before the server goes.
        await webhooks.close()
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivery

    app = FastAPI(title="NetValve sandbox", lifespan=lifespan, docs_url="/_sandbox/docs")
    app.state.store = store
    app.state.faults = faults
    app.state.webhooks = webhooks
    app.add_middleware(FaultMiddleware, registry=faults)

    @app.exception_handler(AuthenticationRequired)
    async def _unauthenticated(_: Request, __: Exception) -> Response:
        return authentication_failure()

    async def authenticate(request: Request) -> None:
        headers = request.headers
        ok = _same(headers.get("netvalve-client-id"), settings.netvalve_client_id) and _same(
            headers.get("netvalve-api-key"), settings.netvalve_api_key.get_secret_value()
        )
        if ok and settings.netvalve_basic_auth_password and settings.netvalve_basic_auth_username:
            pair = (
                f"{settings.netvalve_basic_auth_username}:"
                f"{settings.netvalve_basic_auth_password.get_secret_value()}"
            )
            ok = _same(
                headers.get("authorization"), "Basic " + base64.b64encode(pair.encode()).decode()
            )
        if not ok:
            raise AuthenticationRequired

    Authenticated = Annotated[None, Depends(authenticate)]

    async def body_of(request: Request) -> dict[str, Any] | None:
        return parse_body(await request.body())

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    invalid_body: Answer = (
        400,
        [
            {
                "responseCode": "GTW_2063",
                "responseMessage": "Validation error for field = body  Message:- Invalid JSON.",
                "responseCodeType": "SOFT DECLINE",
            }
        ],
    )

    @app.get("/hpf/initializeSession")
    async def initialize_session(request: Request, _: Authenticated) -> Response:
        return answer(await store.initialize_hpf_session(base_url(request)))

    @app.post("/hpf/tokenize")
    async def tokenize(request: Request) -> Response:
        # The browser step NetValve's SDK performs; the payment token is the credential.
        body = await body_of(request)
        return answer(invalid_body if body is None else await store.tokenize(body))

    @app.get("/hpf/demo", response_class=HTMLResponse)
    async def demo(request: Request) -> HTMLResponse:
        _, session = await store.initialize_hpf_session(base_url(request))
        token = str(session["paymentToken"]) if isinstance(session, dict) else ""
        ttl = f"{settings.sandbox_token_ttl_seconds:g}"
        return HTMLResponse(
            DEMO_PAGE.replace("{{PAYMENT_TOKEN}}", token).replace("{{TOKEN_TTL}}", ttl)
        )

    @app.get("/hpf/sdk.js")
    async def sdk() -> Response:
        return Response(SDK_SCRIPT, media_type="text/javascript")

    for path, kind in (("/sale", "SALE"), ("/authorize", "AUTHORIZATION")):

        async def pay(request: Request, _: Authenticated, kind: str = kind) -> Response:
            body = await body_of(request)
            return answer(invalid_body if body is None else await store.pay(kind, body))

        app.add_api_route(path, pay, methods=["POST"], name=kind.lower())

    @app.post("/capture")
    async def capture(request: Request, _: Authenticated) -> Response:
        body = await body_of(request)
        return answer(invalid_body if body is None else await store.capture(body))

    @app.post("/cancel")
    async def cancel(request: Request, _: Authenticated) -> Response:
        body = await body_of(request)
        return answer(invalid_body if body is None else await store.cancel(body))

    @app.post("/refund")
    async def refund(request: Request, _: Authenticated) -> Response:
        body = await body_of(request)
        return answer(invalid_body if body is None else await store.refund(body))

    @app.post("/hpp/order")
    async def hpp_order(request: Request, _: Authenticated) -> Response:
        body = await body_of(request)
        if body is None:
            return answer(invalid_body)
        return answer(await store.hpp_order(body, base_url(request)))

    def transaction_query(value: str | None) -> int | None:
        return int(value) if value is not None and value.isdigit() else None

    missing_id: Answer = (
        400,
        [
            {
                "responseCode": "GTW_2048",
                "responseMessage": "Validation error for field = transactionId  Message:- "
                "Transaction ID missing.",
                "responseCodeType": "SOFT DECLINE",
            }
        ],
    )

    @app.get("/inquiry")
    async def inquiry(_: Authenticated, transactionId: str | None = None) -> Response:
        transaction_id = transaction_query(transactionId)
        if transaction_id is None:
            return answer(missing_id)
        return answer(await store.inquiry(transaction_id))

    @app.get("/transaction")
    async def transaction(_: Authenticated, id: str | None = None) -> Response:
        transaction_id = transaction_query(id)
        if transaction_id is None:
            return answer(missing_id)
        return answer(await store.get_transaction(transaction_id))

    @app.get("/order")
    async def order(request: Request, _: Authenticated) -> Response:
        return answer(await store.get_order(dict(request.query_params)))

    # --- back office: undocumented portal API (NETVALVE_API.md §9, waterfall step 2) ----------

    backoffice_tokens: dict[str, float] = {}  # accessToken -> time.monotonic() at expiry

    @app.post("/backoffice/users/sign-in")
    async def backoffice_sign_in(request: Request) -> Response:
        # The portal's login with the basic-auth pair; `checkForBot` is accepted and ignored.
        body = await body_of(request)
        if body is None:
            return answer(invalid_body)
        user = settings.netvalve_basic_auth_username
        password = settings.netvalve_basic_auth_password
        if not (user and password):
            return authentication_failure()
        user_ok = _same(_text(body.get("userName")), user)
        password_ok = _same(_text(body.get("password")), password.get_secret_value())
        if not (user_ok and password_ok):
            return authentication_failure()
        now = time.monotonic()
        for expired in [token for token, until in backoffice_tokens.items() if until <= now]:
            del backoffice_tokens[expired]
        token = secrets.token_urlsafe(32)
        backoffice_tokens[token] = now + BACKOFFICE_TOKEN_TTL_SECONDS
        return WireResponse({"accessToken": token, "expiresIn": BACKOFFICE_TOKEN_TTL_SECONDS})

    async def signed_in(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        until = backoffice_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if until is None or time.monotonic() >= until:
            raise AuthenticationRequired

    SignedIn = Annotated[None, Depends(signed_in)]

    @app.get("/backoffice/hpf/script")
    async def backoffice_scripts(request: Request, _: SignedIn) -> Response:
        src = f"{base_url(request)}/hpf/sdk.js?version={SDK_VERSION}"
        return WireResponse(
            [
                {
                    "id": script_id,
                    "status": "ACTIVE",
                    "deleted": False,
                    "isDefault": is_default,
                    "createdDate": created,
                    "netvalveScriptSrc": src,
                    "integrity": integrity,
                    "clientVersion": SDK_VERSION,
                }
                for script_id, is_default, created, integrity in BACKOFFICE_SCRIPTS
            ]
        )

    # --- control endpoints for tests, scripts and people (not part of NetValve's API) -------

    @app.get("/_sandbox/faults")
    async def list_faults(_: Authenticated) -> list[FaultRule]:
        return faults.rules

    @app.post("/_sandbox/faults", status_code=201)
    async def add_fault(rule: FaultRule, _: Authenticated) -> FaultRule:
        faults.rules.append(rule)
        return rule

    @app.delete("/_sandbox/faults", status_code=204)
    async def clear_faults(_: Authenticated) -> None:
        faults.rules.clear()

    @app.put("/_sandbox/latency", status_code=204)
    async def set_latency(_: Authenticated, ms: float = 0) -> None:
        faults.latency_ms = max(ms, 0)

    @app.post("/_sandbox/transactions/{transaction_id}/resolve")
    async def resolve(transaction_id: int, _: Authenticated, approve: bool = True) -> Response:
        return answer(await store.resolve_pending(transaction_id, approve))

    @app.post("/_sandbox/transactions/{transaction_id}/chargeback")
    async def charge_back(
        transaction_id: int, _: Authenticated, amount: Decimal | None = None
    ) -> Response:
        return answer(await store.charge_back(transaction_id, amount))

    @app.post("/_sandbox/faults/release", status_code=200)
    async def release_held(
        _: Authenticated, path: str | None = None, kind: Literal["hold", "late"] | None = None
    ) -> dict[str, int]:
        """Process now the requests `hold` and `late` faults keep (all, or those of `path` and
        `kind`)."""
        return {"released": await faults.release(path, kind)}

    @app.get("/_sandbox/transactions")
    async def list_transactions(_: Authenticated, client_order_prefix: str = "") -> Response:
        """Every transaction, for tests that count what reached the gateway."""
        listed = [
            {
                "transactionId": transaction.id,
                "transactionType": transaction.type,
                "clientOrderId": transaction.client_order_id,
                "status": transaction.status,
                "amount": transaction.amount,
                "responseCode": transaction.outcome.response_code,
            }
            for transaction in store.transactions.values()
            if (transaction.client_order_id or "").startswith(client_order_prefix)
        ]
        return WireResponse({"transactions": listed})

    @app.get("/_sandbox/webhooks")
    async def delivered_webhooks(_: Authenticated) -> Response:
        return WireResponse({"delivered": webhooks.delivered})

    @app.post("/_sandbox/reset", status_code=204)
    async def reset(_: Authenticated) -> None:
        store.reset()
        faults.rules.clear()
        faults.drop_held()
        webhooks.delivered.clear()
        backoffice_tokens.clear()

    return app
