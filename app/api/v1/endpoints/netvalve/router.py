from fastapi import APIRouter

from app.api.v1.endpoints.netvalve import cancel, capture, hpf, payment, refund, status

router = APIRouter(prefix="/api/v1/netvalve", tags=["netvalve"])
for module in (hpf, payment, capture, refund, cancel, status):
    router.include_router(module.router)
