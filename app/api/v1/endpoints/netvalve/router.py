from fastapi import APIRouter

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

router = APIRouter(prefix="/api/v1/netvalve", tags=["netvalve"])
for module in (
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
):
    router.include_router(module.router)
