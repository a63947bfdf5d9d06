from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import httpx
from fastapi import Depends, Request

from app.clients.netvalve import NetvalveClient
from app.core.config import Settings
from app.core.state import Resources
from app.db.medusa import MedusaRepository
from app.services.idempotency import IdempotencyService
from app.services.medusa_notifications import MedusaNotificationService
from app.services.netvalve import NetvalveService
from app.services.netvalve.events import GatewayEventService
from app.services.netvalve.extra_charges import ExtraChargeService
from app.services.netvalve.ledger import Ledger
from app.services.netvalve.reconciliation import Reconciler
from app.services.netvalve.webhooks import WebhookService

# Dependencies are `async def` even when they do no I/O: FastAPI runs a plain `def` dependency
# in the thread pool, a thread hop per dependency per request that profiling showed on every
# payment. They must never block.
#
# Each takes the request alone rather than `ResourcesDep`: FastAPI solves a sub-dependency again,
# down to its leaves, before it looks in its per-request cache, so a chain costs every route a
# solve per link.


@dataclass(frozen=True, slots=True)
class Services:
    """The routes' services, built once per app by the lifespan. They keep no per-request
    state (only the lifespan's resources and settings), so every request can share them."""

    netvalve: NetvalveService
    webhook: WebhookService
    extra_charge: ExtraChargeService
    medusa_notification: MedusaNotificationService
    idempotency: IdempotencyService


def build_services(resources: Resources) -> Services:
    ttl = timedelta(hours=resources.settings.idempotency_key_ttl_hours)
    return Services(
        netvalve=build_netvalve_service(resources),
        webhook=build_webhook_service(resources),
        extra_charge=build_extra_charge_service(resources),
        medusa_notification=build_medusa_notification_service(resources),
        idempotency=IdempotencyService(resources.sessionmaker, ttl),
    )


def _resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_resources(request: Request) -> Resources:
    return _resources(request)


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_settings_dep(request: Request) -> Settings:
    return _resources(request).settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_netvalve_service(request: Request) -> NetvalveService:
    return _services(request).netvalve


def build_netvalve_service(resources: Resources) -> NetvalveService:
    settings = resources.settings
    return NetvalveService(
        resources.sessionmaker,
        NetvalveClient(resources.http_client, settings),
        MedusaRepository(resources.medusa_pool),
        settings,
    )


NetvalveServiceDep = Annotated[NetvalveService, Depends(get_netvalve_service)]


async def get_webhook_service(request: Request) -> WebhookService:
    return _services(request).webhook


def build_gateway_event_service(resources: Resources) -> GatewayEventService:
    settings = resources.settings
    client = NetvalveClient(resources.http_client, settings)
    reconciler = Reconciler(Ledger(resources.sessionmaker, settings), client, settings)
    return GatewayEventService(resources.sessionmaker, client, reconciler, settings)


def build_extra_charge_service(resources: Resources) -> ExtraChargeService:
    settings = resources.settings
    return ExtraChargeService(
        resources.sessionmaker, NetvalveClient(resources.http_client, settings), settings
    )


async def get_extra_charge_service(request: Request) -> ExtraChargeService:
    return _services(request).extra_charge


ExtraChargeServiceDep = Annotated[ExtraChargeService, Depends(get_extra_charge_service)]


def build_webhook_service(resources: Resources) -> WebhookService:
    return WebhookService(
        resources.sessionmaker, build_gateway_event_service(resources), resources.settings
    )


WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]


def build_medusa_notification_service(
    resources: Resources, http: httpx.AsyncClient | None = None
) -> MedusaNotificationService:
    """`http` is the delivery worker's own client (never the NetValve one); the operator routes
    only read and requeue, so they need none."""
    return MedusaNotificationService(resources.sessionmaker, resources.settings, http)


async def get_medusa_notification_service(request: Request) -> MedusaNotificationService:
    return _services(request).medusa_notification


MedusaNotificationServiceDep = Annotated[
    MedusaNotificationService, Depends(get_medusa_notification_service)
]


async def get_idempotency(request: Request) -> IdempotencyService:
    return _services(request).idempotency


IdempotencyDep = Annotated[IdempotencyService, Depends(get_idempotency)]
