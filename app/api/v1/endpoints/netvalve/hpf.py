from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import STOREFRONT_AUTH_ERRORS, StorefrontPrincipal
from app.api.deps import NetvalveServiceDep
from app.core.errors import MalformedJSON
from app.schemas.netvalve import HpfSessionRequest, HpfSessionResponse, HpfUnavailableResponse
from app.services.netvalve_service import (
    HpfUnavailable,
    PaymentSessionNotFound,
    UnsupportedCurrency,
)

router = APIRouter(prefix="/hpf")

HPF_ERRORS = {
    **STOREFRONT_AUTH_ERRORS,
    **PaymentSessionNotFound.schema(),
    **UnsupportedCurrency.schema(),
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
    """Start a hosted-payment-fields session for a Medusa payment session or cart."""
    return await service.hpf_session(body.payment_session_id, body.cart_id, reuse=False)


@router.get("/session", response_model=HpfSessionResponse, responses=HPF_ERRORS)
async def get_hpf_session(
    query: Annotated[HpfSessionRequest, Query()],
    _: StorefrontPrincipal,
    service: NetvalveServiceDep,
) -> HpfSessionResponse:
    """The same from query parameters; an unexpired session is reused."""
    return await service.hpf_session(query.payment_session_id, query.cart_id, reuse=True)
