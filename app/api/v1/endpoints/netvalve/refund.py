from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.auth import ServerPrincipal
from app.api.deps import IdempotencyDep, NetvalveServiceDep
from app.api.v1.endpoints.netvalve._common import (
    MONEY_OPENAPI,
    OPERATION_ERRORS,
    IdempotencyKeyHeader,
    idempotent,
    request_key,
)
from app.schemas.netvalve import DeclineResponse, RefundRequest
from app.schemas.payment import PaymentResponse
from app.services.netvalve.errors import InvalidAmount, PaymentStateConflict
from app.services.netvalve.outcomes import PaymentDeclined
from app.services.netvalve.payments import RefundExceedsCaptured, positive_amount

router = APIRouter()


@router.post(
    "/refund",
    response_model=PaymentResponse,
    openapi_extra=MONEY_OPENAPI,
    responses={
        **OPERATION_ERRORS,
        **PaymentDeclined.schema(DeclineResponse),
        **PaymentStateConflict.schema(),
        **RefundExceedsCaptured.schema(),
        **InvalidAmount.schema(),
    },
)
async def refund_payment(
    request: Request,
    body: RefundRequest,
    principal: ServerPrincipal,
    service: NetvalveServiceDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Refund a captured payment, fully or in parts; never more than was captured."""
    if body.amount is not None:
        positive_amount(body.amount)  # a refused amount does not use up the Idempotency-Key
    key = request_key(principal, idempotency_key)
    return await idempotent(
        request,
        idempotency,
        principal,
        idempotency_key,
        body,
        lambda phases: service.refund(body, request_key=key, phases=phases),
    )
