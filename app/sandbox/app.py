"""The sandbox as an ASGI app: NetValve's paths, fields, codes and statuses (see README.md).

This module only wires: state from settings, the fault middleware, the 401 handler and the
routers. `SandboxSettings` is re-exported because callers build the app from it.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.sandbox.faults import FaultMiddleware
from app.sandbox.routes import admin, backoffice, hpf, inquiry, payments
from app.sandbox.routes.responses import AuthenticationRequired, authentication_failure
from app.sandbox.settings import SandboxSettings
from app.sandbox.state import SandboxState

__all__ = ["SandboxSettings", "create_sandbox_app"]


def create_sandbox_app(settings: SandboxSettings | None = None) -> FastAPI:
    state = SandboxState.from_settings(settings or SandboxSettings())
    app = FastAPI(title="NetValve sandbox", lifespan=_lifespan, docs_url="/_sandbox/docs")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, registry=state.faults)
    app.add_exception_handler(AuthenticationRequired, _unauthenticated)
    for router in (hpf.router, payments.router, inquiry.router, backoffice.router, admin.router):
        app.include_router(router)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: SandboxState = app.state.sandbox
    webhooks = state.webhooks
    delivery = asyncio.create_task(webhooks.run())
    yield
    # Deliveries first, then the loop that owns their HTTP client, so every connection
    # is closed before the server goes.
    await webhooks.close()
    delivery.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await delivery


async def _unauthenticated(_: Request, __: Exception) -> Response:
    return authentication_failure()
