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
from app.schemas.netvalve import CancelRequest, DeclineResponse
from app.schemas.payment import PaymentResponse
from app.services.netvalve.errors import PaymentStateConflict
from app.services.netvalve.outcomes import PaymentDeclined

router = APIRouter()


@router.post(
    "/cancel",
    response_model=PaymentResponse,
    openapi_extra=MONEY_OPENAPI,
    responses={
        **OPERATION_ERRORS,
        **PaymentDeclined.schema(DeclineResponse),
        **PaymentStateConflict.schema(),
    },
)
async def cancel_payment(
    request: Request,
    body: CancelRequest,
    principal: ServerPrincipal,
    service: NetvalveServiceDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Void an authorization that has not been captured."""
    return await idempotent(
        request,
        idempotency,
        principal,
        idempotency_key,
        body,
        lambda phases: service.cancel(body, phases),
    )
