from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import STOREFRONT_AUTH_ERRORS, StorefrontPrincipal
from app.api.deps import NetvalveServiceDep
from app.api.v1.endpoints.netvalve._common import one_of
from app.core.errors import MalformedJSON
from app.schemas.error import ErrorResponse
from app.schemas.netvalve import (
    HpfSessionRequest,
    HpfSessionResponse,
    HpfUnavailableResponse,
    PaymentConflictResponse,
)
from app.services.netvalve.errors import InvalidAmount, PaymentInProgress, PaymentStateConflict
from app.services.netvalve.hpf import HpfUnavailable
from app.services.netvalve.medusa import (
    AlreadyPaid,
    PaymentSessionAmountInvalid,
    PaymentSessionNotFound,
    PaymentSessionNotPayable,
    UnsupportedCurrency,
)

router = APIRouter(prefix="/hpf")

HPF_ERRORS = {
    **STOREFRONT_AUTH_ERRORS,
    **PaymentSessionNotFound.schema(),
    409: one_of(
        PaymentConflictResponse,
        AlreadyPaid,
        PaymentSessionNotPayable,
        PaymentStateConflict,
        PaymentInProgress,
    ),
    422: one_of(ErrorResponse, UnsupportedCurrency, PaymentSessionAmountInvalid, InvalidAmount),
    **HpfUnavailable.schema(HpfUnavailableResponse),
}


@router.post(
    "/session",
    response_model=HpfSessionResponse,
    responses={**HPF_ERRORS, **MalformedJSON.schema()},
)
async def create_hpf_session(
    body: HpfSessionRequest, _: StorefrontPrincipal, service: NetvalveServiceDep
) -> HpfSessionResponse:
    """Start a hosted-payment-fields session for a Medusa payment session or cart; a paid or
    otherwise unpayable session answers 409."""
    return await service.hpf_session(body.payment_session_id, body.cart_id, reuse=False)


@router.get("/session", response_model=HpfSessionResponse, responses=HPF_ERRORS)
async def get_hpf_session(
    query: Annotated[HpfSessionRequest, Query()],
    _: StorefrontPrincipal,
    service: NetvalveServiceDep,
) -> HpfSessionResponse:
    """The same from query parameters; an unexpired session is reused unless a payment attempt
    has spent its token (then a new session starts)."""
    return await service.hpf_session(query.payment_session_id, query.cart_id, reuse=True)
