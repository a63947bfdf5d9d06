"""Application factory. `uvicorn app.main:app` serves the module-level `app`."""

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import structlog
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.api import health
from app.api.deps import build_netvalve_service, build_webhook_service
from app.api.v1.endpoints.netvalve.router import router as netvalve_router
from app.core.config import ConfigurationError, Settings, get_settings
from app.core.errors import register_exception_handlers
from app.core.headers import SecurityHeadersMiddleware
from app.core.logging import REQUEST_ID_HEADER, RequestContextMiddleware, configure_logging
from app.core.ratelimit import RateLimiter
from app.core.state import Resources
from app.db.medusa import create_medusa_pool
from app.db.session import create_engine, create_sessionmaker
from app.schemas.error import ErrorResponse

log = structlog.get_logger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one client every gateway call shares, so connections are pooled and reused."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=settings.netvalve_connect_timeout,
            read=settings.netvalve_read_timeout,
            write=settings.netvalve_connect_timeout,
            pool=settings.netvalve_connect_timeout,
        ),
        limits=httpx.Limits(
            max_connections=settings.netvalve_max_connections,
            max_keepalive_connections=settings.netvalve_max_keepalive_connections,
        ),
        headers={"User-Agent": f"netvalve-gateway/{VERSION}"},
        follow_redirects=False,
    )


def alembic_head() -> str | None:
    """The migration head this build ships, read from `alembic/`; None if it is not shipped."""
    ini = PROJECT_ROOT / "alembic.ini"
    if not ini.exists():
        return None
    config = Config(str(ini))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    return ScriptDirectory.from_config(config).get_current_head()


async def _sweep_forever(resources: Resources) -> None:
    """Settle unknown and pending gateway outcomes, forever, at the configured pace."""
    service = build_netvalve_service(resources)
    while True:
        await asyncio.sleep(resources.settings.reconcile_interval_seconds)
        try:
            settled = await service.sweep_once()
        except Exception:
            log.exception("reconcile.sweep_failed")
            continue
        if settled:
            log.info("reconcile.sweep", settled=settled)


async def _process_webhooks_forever(resources: Resources) -> None:
    """Apply stored webhook events to the ledger, outside the requests that stored them."""
    service = build_webhook_service(resources)
    while True:
        try:
            processed = await service.process_due()
        except Exception:
            log.exception("webhook.worker_failed")
            processed = 0
        if not processed:
            await asyncio.sleep(resources.settings.webhook_worker_interval_seconds)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
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
        if settings.webhook_worker_enabled:
            worker = asyncio.create_task(_process_webhooks_forever(app.state.resources))
            stack.push_async_callback(_stop, worker)
        if settings.reconcile_enabled:
            sweeper = asyncio.create_task(_sweep_forever(app.state.resources))
            stack.push_async_callback(_stop, sweeper)
        log.info(
            "app.started",
            environment=settings.environment.value,
            netvalve_environment=settings.netvalve_environment.value,
            netvalve_api=settings.netvalve_url("api"),
        )
        yield
        log.info("app.stopping")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="netvalve-gateway",
        version=VERSION,
        summary="Connects Medusa v2 stores to the NetValve card-payment gateway.",
        lifespan=lifespan,
        responses={
            422: {"model": ErrorResponse, "description": "The request is not valid."},
            500: {"model": ErrorResponse, "description": "An unexpected fault."},
        },
    )
    app.state.settings = settings
    register_exception_handlers(app)
    app.add_middleware(
        CORSMiddleware,
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
    app.include_router(netvalve_router)
    return app


def _create_app_or_exit() -> FastAPI:
    try:
        return create_app()
    except ConfigurationError as exc:
        # A clear one-line reason instead of a traceback; the message never holds a secret value.
        sys.exit(f"netvalve-gateway: {exc}")


app = _create_app_or_exit()
