"""The NetValve routes against real PostgreSQL, Medusa's DDL fixture and the sandbox.

Money routes commit in short phases of their own (see app.db.session.Phases), so these tests
cannot run inside a rolled-back transaction: each test uses fresh Medusa ids, and the ledger
tables are emptied afterwards. The client the tests drive is `tests.fixtures.api.Api`.
"""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from pydantic import SecretStr

from app.dev.embedded_pg import asyncpg_dsn
from app.main import create_app
from tests.conftest import asgi_client, started_app
from tests.fixtures.api import ADMIN_KEY, LEDGER_TABLES, STOREFRONT_KEY, Api, ApiFactory
from tests.fixtures.gateway import SandboxBackend
from tests.fixtures.log_audit import audit_database
from tests.fixtures.settings import make_settings


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
        # The inbox too: a webhook a test stored and never processed is not the next test's.
        await connection.execute(f"TRUNCATE {LEDGER_TABLES}, webhook_events")
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
