from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.auth import RateLimited, StorefrontPrincipal
from app.api.deps import IdempotencyDep, NetvalveServiceDep
from app.api.v1.endpoints.netvalve._common import (
    MONEY_ERRORS,
    MONEY_OPENAPI,
    IdempotencyKeyHeader,
    idempotent,
    one_of,
    request_key,
)
from app.schemas.error import ErrorResponse
from app.schemas.netvalve import DeclineResponse, PaymentConflictResponse
from app.schemas.payment import PaymentRequest, PaymentResponse
from app.services.idempotency import IdempotencyKeyInFlight
from app.services.netvalve.errors import PaymentInProgress, PaymentStateConflict
from app.services.netvalve.medusa import (
    AlreadyPaid,
    PaymentSessionAmountInvalid,
    PaymentSessionNotFound,
    PaymentSessionNotPayable,
    UnsupportedCurrency,
)
from app.services.netvalve.outcomes import GatewayValidationFailed, PaymentDeclined
from app.services.netvalve.payments import AmountMismatch

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
        409: one_of(
            PaymentConflictResponse,
            AlreadyPaid,
            PaymentSessionNotPayable,
            PaymentStateConflict,
            PaymentInProgress,
            IdempotencyKeyInFlight,
        ),
        422: one_of(
            ErrorResponse,
            AmountMismatch,
            PaymentSessionAmountInvalid,
            UnsupportedCurrency,
            GatewayValidationFailed,
        ),
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
    """Authorize or sell with a hosted-payment-fields token; the amount comes from Medusa.

    Only a payable Medusa session is charged: a paid one answers 409 AlreadyPaid with the
    payment (a retry with the same Idempotency-Key replays the answer that paid it)."""
    key = request_key(principal, idempotency_key)
    return await idempotent(
        request,
        idempotency,
        principal,
        idempotency_key,
        body,
        lambda phases: service.pay(body, request_key=key, phases=phases),
    )
