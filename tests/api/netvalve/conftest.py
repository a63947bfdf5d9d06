"""The NetValve routes against real PostgreSQL, Medusa's DDL fixture and the sandbox.

Money routes commit in short phases of their own (see netvalve_service), so these tests cannot
run inside a rolled-back transaction: each test uses fresh Medusa ids, and the ledger tables are
emptied afterwards.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from app.dev.embedded_pg import asyncpg_dsn
from app.main import create_app
from tests.conftest import asgi_client, started_app
from tests.fixtures.gateway import APPROVE_CARD, SandboxBackend
from tests.fixtures.ledger import assert_ledger_matches_gateway
from tests.fixtures.log_audit import audit_database
from tests.fixtures.medusa import (
    create_address,
    create_cart,
    create_payment_collection,
    create_payment_session,
)
from tests.fixtures.settings import make_settings

STOREFRONT_KEY = "sf_test_4b1e9c7a2d5f8e0a3c6b9d1f"
ADMIN_KEY = "adm_test_8e2a6c0f4b1d9e7a5c3f1b8d"
LEDGER_TABLES = (
    "medusa_notifications, extra_charges, payment_attempts, payments, idempotency_keys, "
    "hpf_sessions"
)


@dataclass
class MedusaSession:
    cart_id: str
    collection_id: str
    session_id: str


class Api:
    def __init__(
        self, http: httpx.AsyncClient, medusa: asyncpg.Connection, sandbox: SandboxBackend
    ) -> None:
        self.http = http
        self.medusa = medusa
        self.sandbox = sandbox

    async def medusa_session(
        self, *, amount: str = "44.00", currency: str = "eur", deleted: bool = False
    ) -> MedusaSession:
        address = await create_address(self.medusa)
        cart = await create_cart(self.medusa, currency=currency, billing_address_id=address)
        collection = await create_payment_collection(
            self.medusa, cart, amount=amount, currency=currency
        )
        session = await create_payment_session(
            self.medusa, collection, amount=amount, currency=currency, deleted=deleted
        )
        return MedusaSession(cart, collection, session)

    async def token(self, card: str = APPROVE_CARD) -> str:
        return await self.sandbox.token_for(card)

    async def post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        key: str = ADMIN_KEY,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        headers["Idempotency-Key"] = idempotency_key or f"test-{uuid.uuid4().hex}"
        return await self.http.post(f"/api/v1/netvalve{path}", json=body, headers=headers)

    async def get(
        self, path: str, params: dict[str, Any], *, key: str = STOREFRONT_KEY
    ) -> httpx.Response:
        return await self.http.get(
            f"/api/v1/netvalve{path}", params=params, headers={"Authorization": f"Bearer {key}"}
        )

    async def pay(self, session: MedusaSession, **extra: Any) -> httpx.Response:
        body = {"payment_session_id": session.session_id, "payment_token": await self.token()}
        body.update(extra)
        return await self.post("/payment", body, key=STOREFRONT_KEY)

    async def sandbox_transactions(self, payment_id: str) -> list[dict[str, Any]]:
        response = await self.sandbox.admin.get(
            "/_sandbox/transactions", params={"client_order_prefix": uuid.UUID(payment_id).hex}
        )
        return list(response.json()["transactions"])

    async def assert_ledger_matches_gateway(self, payment_id: str) -> None:
        await assert_ledger_matches_gateway(self.medusa, self.sandbox.admin, payment_id)

    async def ledger_counts(self) -> tuple[int, int]:
        payments = await self.medusa.fetchval("SELECT count(*) FROM payments")
        attempts = await self.medusa.fetchval("SELECT count(*) FROM payment_attempts")
        return int(payments), int(attempts)


def money(value: str) -> str:
    return str(Decimal(value))


ApiFactory = Callable[..., Any]


@pytest_asyncio.fixture
async def api_factory(
    database_url: str, sandbox_url: str, sandbox: SandboxBackend, medusa_writer: asyncpg.Connection
) -> AsyncIterator[ApiFactory]:
    """Builds a started app against the sandbox; `overrides` change its settings."""
    opened: list[Any] = []

    async def build(**overrides: Any) -> Api:
        values: dict[str, Any] = {
            "netvalve_base_url": sandbox_url,
            "netvalve_hpp_url": sandbox_url,
            "netvalve_hpf_url": sandbox_url,
            "netvalve_backoffice_url": sandbox_url,
            "netvalve_read_timeout": 2.0,
            "storefront_api_keys": [SecretStr(STOREFRONT_KEY)],
            "admin_api_keys": [SecretStr(ADMIN_KEY)],
            "reconcile_enabled": False,
            "unknown_outcome_budget_seconds": 0.3,
        }
        values.update(overrides)
        app = create_app(make_settings(values.pop("database_url", database_url), **values))
        lifespan = started_app(app)
        await lifespan.__anext__()
        http = asgi_client(app)
        opened.append((lifespan, http))
        return Api(http, medusa_writer, sandbox)

    yield build
    for lifespan, http in opened:
        await http.aclose()
        with pytest.raises(StopAsyncIteration):
            await lifespan.__anext__()
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await audit_database(connection, "api test")
        await connection.execute(f"TRUNCATE {LEDGER_TABLES}")
    finally:
        await connection.close()


@pytest_asyncio.fixture
async def api(api_factory: ApiFactory) -> Api:
    built: Api = await api_factory()
    return built


@pytest_asyncio.fixture
async def manual_api(api_factory: ApiFactory) -> Api:
    built: Api = await api_factory(netvalve_capture_mode="manual")
    return built
