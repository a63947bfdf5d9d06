"""Application factory: `uvicorn --factory app.main:create_app` builds the app in each server
process. Importing this module builds nothing: no settings are read, no engine or client made."""

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import structlog
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import VERSION
from app.api import health
from app.api import metrics as metrics_api
from app.api.deps import (
    build_extra_charge_service,
    build_gateway_event_service,
    build_medusa_notification_service,
    build_netvalve_service,
    build_services,
    build_webhook_service,
)
from app.api.guard import RequestGuardMiddleware, RequestTooLarge
from app.api.v1.endpoints.netvalve.router import include_routes as include_netvalve_routes
from app.clients.transport import create_http_client
from app.core import metrics
from app.core.config import ConfigurationError, Settings, get_settings, secret_values
from app.core.cors import ErrorShapeCORSMiddleware
from app.core.errors import register_exception_handlers
from app.core.headers import SecurityHeadersMiddleware
from app.core.logging import REQUEST_ID_HEADER, RequestContextMiddleware, configure_logging
from app.core.ratelimit import RateLimiter
from app.core.startup import database_address
from app.core.state import Resources
from app.db.errors import is_database_down
from app.db.medusa import create_medusa_pool
from app.db.session import create_engine, create_sessionmaker
from app.schemas.error import ErrorResponse
from app.services.idempotency import release_after_outage

log = structlog.get_logger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_PROBE_SECONDS = 3.0


def alembic_head() -> str | None:
    """The migration head this build ships, read from `alembic/`; None if it is not shipped."""
    ini = PROJECT_ROOT / "alembic.ini"
    if not ini.exists():
        return None
    config = Config(str(ini))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    return ScriptDirectory.from_config(config).get_current_head()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep for `seconds`, or less if the service starts stopping meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class DatabaseOutage:
    """How a background loop reports that the database is down: one line when it goes and one
    when it is back, not a traceback on every pass, and a pause that grows while it lasts."""

    MAX_BACKOFF_SECONDS = 30.0

    def __init__(self, worker: str, settings: Settings) -> None:
        self.worker = worker
        self.address = database_address(settings.database_url or "")
        self.failures = 0

    def failed(self, error: BaseException) -> bool:
        """True (and logged once per outage) if `error` means the database is unreachable."""
        if not is_database_down(error):
            return False
        if not self.failures:
            log.warning(
                "worker.database_unreachable",
                worker=self.worker,
                database=self.address,
                error=type(error).__name__,
            )
        self.failures += 1
        return True

    def ok(self) -> None:
        if self.failures:
            log.info("worker.database_back", worker=self.worker, failed_passes=self.failures)
            self.failures = 0

    def backoff(self, interval: float) -> float:
        if not self.failures:
            return interval
        return min(self.MAX_BACKOFF_SECONDS, interval * (1 << min(self.failures, 10)))


async def _database_reachable(engine: AsyncEngine, settings: Settings) -> None:
    """One line at start when the database cannot be reached (host, port and database; never the
    password). The service still starts: /health/ready answers 503 and the money routes 503 until
    it is back, which is what an orchestrator and NetValve's retries expect."""
    try:
        async with asyncio.timeout(STARTUP_PROBE_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # a wrong password too: one line, and /health/ready tells the rest
        log.warning(
            "app.database_unreachable",
            database=database_address(settings.database_url or ""),
            error=type(error).__name__,
        )


async def _sweep_forever(resources: Resources, stop: asyncio.Event) -> None:
    """Settle unknown and pending gateway outcomes at the configured pace, until `stop`."""
    service = build_netvalve_service(resources)
    events = build_gateway_event_service(resources)
    extra_charges = build_extra_charge_service(resources)
    outage = DatabaseOutage("reconcile", resources.settings)
    while not stop.is_set():
        await _pause(stop, resources.settings.reconcile_interval_seconds)
        if stop.is_set():
            return
        try:
            await release_after_outage(resources.sessionmaker)  # keys a DB outage left locked
            settled = await service.sweep_once(stop=stop)
        except Exception as error:
            metrics.RECONCILE_SWEEPS.labels("failed").inc()
            if not outage.failed(error):
                log.exception("reconcile.sweep_failed")
            continue
        outage.ok()
        metrics.RECONCILE_SWEEPS.labels("ok").inc()
        metrics.RECONCILE_SETTLED.inc(settled)
        metrics.RECONCILE_LAST_SWEEP.set_to_current_time()
        if settled:
            log.info("reconcile.sweep", settled=settled)
        try:
            # Second looks: sales given up as not found, and reversals still to make.
            found = await events.recheck_not_found()
            await extra_charges.resume_reversals()
        except Exception:
            log.exception("reconcile.recheck_failed")
            continue
        metrics.RECONCILE_SETTLED.inc(found)


async def _process_webhooks_forever(resources: Resources, stop: asyncio.Event) -> None:
    """Apply stored webhook events to the ledger, outside the requests that stored them."""
    service = build_webhook_service(resources)
    outage = DatabaseOutage("webhook.worker", resources.settings)
    interval = resources.settings.webhook_worker_interval_seconds
    while not stop.is_set():
        try:
            processed = await service.process_due(stop=stop)
        except Exception as error:
            if not outage.failed(error):
                log.exception("webhook.worker_failed")
            processed = 0
        else:
            outage.ok()
        if not processed:
            await _pause(stop, outage.backoff(interval))


async def _notify_medusa_forever(resources: Resources, stop: asyncio.Event) -> None:
    """Deliver the outbox of notifications to Medusa, with a client of its own: never the
    NetValve one, whose pool and timeouts are sized for payments."""
    settings = resources.settings
    outage = DatabaseOutage("medusa.notifier", settings)
    interval = settings.medusa_notify_interval_seconds
    timeout = httpx.Timeout(settings.medusa_notify_timeout_seconds)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        service = build_medusa_notification_service(resources, http)
        while not stop.is_set():
            try:
                sent = await service.deliver_due(stop=stop)
            except Exception as error:
                if not outage.failed(error):
                    log.exception("medusa.notifier_failed")
                sent = 0
            else:
                outage.ok()
            if not sent:
                await _pause(stop, outage.backoff(interval))


WorkerLoop = Callable[[Resources, asyncio.Event], Coroutine[Any, Any, None]]


class Workers:
    """The background loops. Stopping lets each finish the item in hand (a gateway call, a
    ledger write) and hand back what it claimed; one still busy after the grace period is
    cancelled, and its item is retried by any worker once its lease ends."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, loop: WorkerLoop, resources: Resources) -> None:
        task = asyncio.create_task(loop(resources, self.stop), name=loop.__name__.strip("_"))
        self.tasks.append(task)

    async def shutdown(self) -> None:
        self.stop.set()
        if not self.tasks:
            return
        _, late = await asyncio.wait(self.tasks, timeout=self.grace_seconds)
        for task in late:
            log.warning("app.worker_cancelled", worker=task.get_name())
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _start_medusa_notifier(workers: Workers, resources: Resources) -> None:
    settings = resources.settings
    if settings.medusa_webhook_url is None:
        # Said once: the ledger writes no notifications and nothing is sent (see
        # app/services/medusa_notifications.py); Medusa learns of late outcomes only by asking.
        log.info(
            "medusa.notifications_disabled",
            reason="MEDUSA_WEBHOOK_URL is not set: Medusa is not told of outcomes it did not ask "
            "for",
        )
        return
    if settings.medusa_notify_worker_enabled:
        workers.start(_notify_medusa_forever, resources)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        await _database_reachable(engine, settings)
        medusa_pool = await create_medusa_pool(settings)
        stack.push_async_callback(medusa_pool.close)
        http_client = create_http_client(settings)
        stack.push_async_callback(http_client.aclose)
        app.state.resources = Resources(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            medusa_pool=medusa_pool,
            http_client=http_client,
            schema_head=alembic_head(),
            rate_limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
            if settings.rate_limit_enabled
            else None,
        )
        app.state.services = build_services(app.state.resources)
        workers = Workers(settings.shutdown_grace_seconds)
        stack.push_async_callback(workers.shutdown)
        if settings.webhook_worker_enabled:
            workers.start(_process_webhooks_forever, app.state.resources)
        if settings.reconcile_enabled:
            workers.start(_sweep_forever, app.state.resources)
        _start_medusa_notifier(workers, app.state.resources)
        log.info(
            "app.started",
            environment=settings.environment.value,
            netvalve_environment=settings.netvalve_environment.value,
            netvalve_api=settings.netvalve_url("api"),
        )
        yield
        log.info("app.stopping")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app, with `settings` or (as uvicorn's factory) those of the environment."""
    settings = settings or _settings_or_exit()
    configure_logging(settings.log_level, secrets=secret_values(settings))
    app = FastAPI(
        title="netvalve-gateway",
        version=VERSION,
        summary="Connects Medusa v2 stores to the NetValve card-payment gateway.",
        lifespan=lifespan,
        responses={
            **RequestTooLarge.schema(),
            422: {"model": ErrorResponse, "description": "The request is not valid."},
            500: {"model": ErrorResponse, "description": "An unexpected fault."},
        },
    )
    app.state.settings = settings
    register_exception_handlers(app)
    # Innermost: its refusals carry CORS headers and the request id like any other answer.
    app.add_middleware(RequestGuardMiddleware, routes=app.routes, settings=settings)
    app.add_middleware(
        ErrorShapeCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", REQUEST_ID_HEADER],
        expose_headers=[REQUEST_ID_HEADER],
    )
    # Outermost, so every response, errors and CORS preflights included, carries the request id
    # and the security headers.
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(health.router)
    app.include_router(metrics_api.router)
    include_netvalve_routes(app)
    return app


def _settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as exc:
        # A clear one-line reason instead of a traceback; the message never holds a secret value.
        sys.exit(f"netvalve-gateway: {exc}")
