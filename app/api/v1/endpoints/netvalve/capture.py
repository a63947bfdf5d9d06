from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.auth import ServerPrincipal
from app.api.deps import IdempotencyDep, NetvalveServiceDep
from app.api.v1.endpoints.netvalve._common import (
    MONEY_OPENAPI,
    OPERATION_ERRORS,
    IdempotencyKeyHeader,
    idempotent,
)
from app.schemas.netvalve import CaptureRequest, DeclineResponse
from app.schemas.payment import PaymentResponse
from app.services.netvalve.errors import InvalidAmount, PaymentStateConflict
from app.services.netvalve.outcomes import PaymentDeclined
from app.services.netvalve.payments import CaptureExceedsAuthorized, positive_amount

router = APIRouter()


@router.post(
    "/capture",
    response_model=PaymentResponse,
    openapi_extra=MONEY_OPENAPI,
    responses={
        **OPERATION_ERRORS,
        **PaymentDeclined.schema(DeclineResponse),
        **PaymentStateConflict.schema(),
        **CaptureExceedsAuthorized.schema(),
        **InvalidAmount.schema(),
    },
)
async def capture_payment(
    request: Request,
    body: CaptureRequest,
    principal: ServerPrincipal,
    service: NetvalveServiceDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Capture an authorization, fully or partially (the rest is released)."""
    if body.amount is not None:
        positive_amount(body.amount)  # a refused amount does not use up the Idempotency-Key
    return await idempotent(
        request,
        idempotency,
        principal,
        idempotency_key,
        body,
        lambda phases: service.capture(body, phases),
    )
