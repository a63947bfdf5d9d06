from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.auth import RateLimited, StorefrontPrincipal
from app.api.deps import IdempotencyDep, NetvalveServiceDep
from app.api.v1.endpoints.netvalve._common import (
    MONEY_ERRORS,
    MONEY_OPENAPI,
    IdempotencyKeyHeader,
    idempotent,
)
from app.schemas.netvalve import DeclineResponse
from app.schemas.payment import PaymentRequest, PaymentResponse
from app.services.netvalve_service import (
    AmountMismatch,
    GatewayValidationFailed,
    PaymentDeclined,
    PaymentSessionNotFound,
    PaymentStateConflict,
    UnsupportedCurrency,
)

router = APIRouter()


@router.post(
    "/payment",
    response_model=PaymentResponse,
    openapi_extra=MONEY_OPENAPI,
    responses={
        **MONEY_ERRORS,
        **RateLimited.schema(),
        **PaymentDeclined.schema(DeclineResponse),
        **PaymentSessionNotFound.schema(),
        **PaymentStateConflict.schema(),
        **AmountMismatch.schema(),
        **UnsupportedCurrency.schema(),
        **GatewayValidationFailed.schema(),
    },
)
async def create_payment(
    request: Request,
    body: PaymentRequest,
    principal: StorefrontPrincipal,
    service: NetvalveServiceDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Authorize or sell with a hosted-payment-fields token; the amount comes from Medusa."""
    return await idempotent(
        request, idempotency, principal, idempotency_key, body, lambda: service.pay(body)
    )
