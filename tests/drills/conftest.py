"""Fixtures for the fault drills: the API helper of tests/api/netvalve, and a PostgreSQL server
of the drills' own that a test may stop and start again (the suite's server must stay up)."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from alembic import command
from app.dev.embedded_pg import EmbeddedPostgres, asyncpg_dsn, ensure_database, with_database
from tests.api.netvalve.conftest import api_factory  # noqa: F401
from tests.conftest import alembic_config
from tests.fixtures.api import LEDGER_TABLES
from tests.fixtures.log_audit import audit_database


class StoppablePostgres:
    """An embedded PostgreSQL holding one migrated database of this service's tables."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: EmbeddedPostgres | None = EmbeddedPostgres(data_dir, cleanup="stop")
        self.url = with_database(self._server.url(), "drill")
        asyncio.run(ensure_database(self._server.url(), "drill"))
        command.upgrade(alembic_config(self.url), "head")

    @property
    def running(self) -> bool:
        return self._server is not None

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.stop)

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.to_thread(EmbeddedPostgres, self.data_dir, cleanup="stop")

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(asyncpg_dsn(self.url))

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture(scope="module")
def stoppable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppablePostgres]:
    """One server per module: starting a PostgreSQL costs a second or two."""
    server = StoppablePostgres(tmp_path_factory.mktemp("drill-pg") / "data")
    yield server
    server.close()


@pytest_asyncio.fixture
async def stoppable_db(stoppable_server: StoppablePostgres) -> AsyncIterator[StoppablePostgres]:
    """The stoppable server, running at the start; running again and emptied at the end."""
    await stoppable_server.start()
    yield stoppable_server
    await stoppable_server.start()
    connection = await stoppable_server.connect()
    try:
        await audit_database(connection, "drill")
        await connection.execute(f"TRUNCATE {LEDGER_TABLES}, webhook_events")
    finally:
        await connection.close()
