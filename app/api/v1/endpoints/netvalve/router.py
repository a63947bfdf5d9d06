"""The NetValve route groups, each included straight into the app under one prefix and tag.

FastAPI keeps an included router whole and matches through it on every request, twice per level
(once to find it, once inside it), so one level is cheaper than a router of routers; the OpenAPI
document is the same either way."""

from fastapi import FastAPI

from app.api.v1.endpoints.netvalve import (
    cancel,
    capture,
    extra_charges,
    hpf,
    medusa_notifications,
    payment,
    refund,
    status,
    webhook,
    webhook_events,
)

PREFIX = "/api/v1/netvalve"
ROUTE_GROUPS = (
    hpf,
    payment,
    capture,
    refund,
    cancel,
    status,
    webhook,
    webhook_events,
    extra_charges,
    medusa_notifications,
)


def include_routes(app: FastAPI) -> None:
    for module in ROUTE_GROUPS:
        app.include_router(module.router, prefix=PREFIX, tags=["netvalve"])
