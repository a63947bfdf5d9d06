"""Test fixtures: a real PostgreSQL, migrated once by Alembic, and one rolled-back transaction
per test.

The server is the one at TEST_DATABASE_URL when set (any database on it; the tests create and
drop their own databases there), otherwise an embedded one in a temporary directory.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

# Importing app.main builds nothing (uvicorn runs `--factory app.main:create_app`), but whatever
# reads the settings from the environment, in this process (`get_settings`, cached on first use)
# or in a subprocess that inherits it, must find a test configuration that reaches no real
# database. Set before anything from `app` is imported.
os.environ.update(
    ENVIRONMENT="test",
    NETVALVE_ENVIRONMENT="sandbox",
    DATABASE_URL="postgresql+asyncpg://unused@127.0.0.1:1/unused",
)

import asyncpg
import httpx
import pytest
import pytest_asyncio
import respx.mocks
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from alembic import command
from app.core.config import Settings
from app.db.session import create_engine
from app.dev.embedded_pg import (
    EmbeddedPostgres,
    asyncpg_dsn,
    drop_database,
    ensure_database,
    with_database,
)
from app.dev.medusa_demo import create_medusa_schema
from app.main import create_app
from tests.fixtures.gateway import backend, backend_name, sandbox, sandbox_url  # noqa: F401
from tests.fixtures.logs import captured_logs  # noqa: F401
from tests.fixtures.medusa import MEDUSA_TABLE_NAMES
from tests.fixtures.settings import make_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# respx patches httpcore by default, which the gateway client's aiohttp transport never calls: a
# mock would see nothing and the request would go out. Mocking at httpx's client layer catches
# every request whatever the transport, and an unmatched one still fails the test.
respx.mocks.DEFAULT_MOCKER = "httpx"
# Fails the run if any log line of the suite's processes, or any text the service served or
# stored, holds a secret or a full card number. (Imported where used, below: a plugin imported
# before pytest registers it cannot have its asserts rewritten.)
pytest_plugins = ["tests.fixtures.log_audit", "tests.fixtures.settlement"]


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "postgres://", "postgresql+asyncpg://", 1
    )


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a database on the test server, used only to create and drop test databases."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield _asyncpg_url(external)
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", cleanup="delete")
    yield server.url()
    server.stop()


class Databases:
    """Creates scratch databases on the test server and drops them all at the end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.names: list[str] = []

    async def acreate(self, purpose: str) -> str:
        name = f"nvtest_{purpose}_{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        await ensure_database(self.server_url, name)
        return with_database(self.server_url, name)

    def create(self, purpose: str) -> str:
        return asyncio.run(self.acreate(purpose))

    def drop_all(self) -> None:
        for name in self.names:
            asyncio.run(self._audit(name))
            asyncio.run(drop_database(self.server_url, name))

    async def _audit(self, name: str) -> None:
        from tests.fixtures.log_audit import audit_database_at

        await audit_database_at(asyncpg_dsn(with_database(self.server_url, name)), name)


@pytest.fixture(scope="session")
def databases(server_url: str) -> Iterator[Databases]:
    registry = Databases(server_url)
    yield registry
    registry.drop_all()


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    return config


async def create_medusa_tables(url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await create_medusa_schema(connection)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def database_url(databases: Databases) -> str:
    """The suite's database: Medusa's tables and ours side by side, as in production.

    Migrated once per run with Alembic, which also tests the migrations.
    """
    url = databases.create("main")
    asyncio.run(create_medusa_tables(url))
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest_asyncio.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def db_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside an outer transaction that is rolled back after the test.

    `create_savepoint` lets application code commit: it releases a savepoint instead.
    """
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            from tests.fixtures.log_audit import audit_database

            raw = await connection.get_raw_connection()
            await audit_database(raw.driver_connection, "rolled-back test transaction")
            await transaction.rollback()


async def started_app(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def app(settings: Settings, db_session: AsyncSession) -> AsyncIterator[FastAPI]:
    # No route takes a request-scoped session (money routes commit in phases); db_session is
    # still requested for its teardown, which audits what the test left in the database.
    application = create_app(settings)
    async for started in started_app(application):
        yield started


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    from tests.fixtures.log_audit import audit_response

    # raise_app_exceptions=False: a 500 is asserted on as a response, like a caller would see it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    # Every body the service serves is audited for secrets and card numbers.
    return httpx.AsyncClient(
        transport=transport, base_url="http://test", event_hooks={"response": [audit_response]}
    )


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as http:
        yield http


@pytest_asyncio.fixture
async def medusa_writer(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A writable connection for seeding Medusa rows (as Medusa itself would write them).

    The service reads them through its own read-only pool, which cannot see another
    connection's uncommitted rows, so seeds are committed and the tables emptied afterwards.
    """
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        yield connection
    finally:
        tables = ", ".join(f'"{name}"' for name in MEDUSA_TABLE_NAMES)
        await connection.execute(f"TRUNCATE {tables}")
        await connection.close()
