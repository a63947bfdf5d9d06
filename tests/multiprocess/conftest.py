"""Service processes as they are deployed: `uvicorn --factory app.main:create_app` subprocesses,
configured only by environment variables, sharing one migrated database and one sandbox that
records its webhooks."""

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from alembic import command
from app.dev.embedded_pg import asyncpg_dsn
from tests.conftest import PROJECT_ROOT, Databases, alembic_config, create_medusa_tables
from tests.fixtures.environment import service_env
from tests.fixtures.gateway import Receiver, SandboxBackend, recording_sandbox
from tests.fixtures.log_audit import audited_output
from tests.fixtures.ports import free_port


def runnable(command: list[str], port: int) -> list[str]:
    """A deployment file's command as this machine runs it: this interpreter, on loopback at
    `port`; every other word as written."""
    words = list(command)
    if words[0] == "uvicorn":
        words = [sys.executable, "-m", "uvicorn", *words[1:]]
    elif words[-2:] == ["-m", "app.dev"]:
        words = [sys.executable, "-m", "app.dev"]  # reads HOST and PORT
    for option, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        if option in words:
            words[words.index(option) + 1] = value
    return words


class ServiceProcess:
    """One `uvicorn --factory app.main:create_app` process; its stdout and stderr go to
    `log_path`, which the suite's log audit reads."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        workdir: Path,
        command: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        """`command`: a deployment file's command (see `runnable`); by default a plain uvicorn.
        `port`: a given one (a restart on the same address), else a free one."""
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = audited_output(name)
        self._log = self.log_path.open("wb")
        default = ["uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1"]
        default += ["--port", "0", "--no-server-header", "--timeout-graceful-shutdown", "10"]
        self.process = subprocess.Popen(
            runnable(command or default, self.port),
            cwd=workdir,  # no .env there: the environment is the whole configuration
            env={
                **env,
                "PYTHONPATH": str(PROJECT_ROOT),
                "PYTHONUNBUFFERED": "1",
                # Read by `python -m app.dev` (the dev compose file's command).
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                ready = httpx.get(f"{self.url}/health/ready", timeout=2)
            except httpx.TransportError as exc:
                last = type(exc).__name__
            else:
                if ready.status_code == 200:
                    return
                last = ready.text
            time.sleep(0.2)
        pytest.fail(f"{self.name} was not ready in {timeout} s ({last}):\n{self.tail()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as an orchestrator stops a replica; SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode

    def log_lines(self) -> list[dict[str, Any]]:
        """The process's JSON log lines (anything else it printed is skipped)."""
        lines = []
        for raw in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                lines.append(line)
        return lines

    def tail(self, count: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-count:])


@pytest.fixture
def shared_database(databases: Databases) -> str:
    """A database of its own, as production has it: Medusa's tables and ours, migrated."""
    url = databases.create("twoproc")
    asyncio.run(create_medusa_tables(url))
    command.upgrade(alembic_config(url), "head")
    return url


@pytest_asyncio.fixture
async def recorder() -> AsyncIterator[tuple[SandboxBackend, Receiver]]:
    """A sandbox whose webhooks land in a `Receiver`, so the test decides who gets them, when,
    and how often."""
    with recording_sandbox() as (url, receiver):
        gateway = SandboxBackend(url)
        try:
            yield gateway, receiver
        finally:
            await gateway.close()


def replica_env(database_url: str, gateway_url: str) -> dict[str, str]:
    """Everything a replica is configured with, as the deployment would set it."""
    return service_env(
        database_url,
        gateway_url,
        NETVALVE_READ_TIMEOUT="5",
        # Fast background loops, so a short test sees many rounds of both.
        WEBHOOK_WORKER_ENABLED="true",
        WEBHOOK_WORKER_INTERVAL_SECONDS="0.1",
        WEBHOOK_RETRY_BASE_SECONDS="0.05",
        RECONCILE_ENABLED="true",
        RECONCILE_INTERVAL_SECONDS="0.3",
        RECONCILE_MIN_AGE_SECONDS="0.5",
        # An unknown outcome is answered 202 at once and left to the sweepers.
        UNKNOWN_OUTCOME_BUDGET_SECONDS="0",
    )


@pytest.fixture
def two_services(
    shared_database: str,
    recorder: tuple[SandboxBackend, Receiver],
    tmp_path: Path,
) -> Iterator[list[ServiceProcess]]:
    """Two replicas of the service on one database: both run the webhook worker and the sweep."""
    gateway, _ = recorder
    env = replica_env(shared_database, gateway.url)
    processes: list[ServiceProcess] = []
    try:
        for name in ("replica-a", "replica-b"):
            processes.append(ServiceProcess(name, env, tmp_path))
        for process in processes:
            process.wait_ready()
        yield processes
    finally:
        for process in processes:
            process.stop()


@pytest_asyncio.fixture
async def shared_db(shared_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A writable connection to the shared database: Medusa's seeds, and the test's queries."""
    connection = await asyncpg.connect(asyncpg_dsn(shared_database))
    try:
        yield connection
    finally:
        await connection.close()
