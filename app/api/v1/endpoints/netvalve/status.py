from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.api.auth import STOREFRONT_AUTH_ERRORS, StorefrontPrincipal
from app.api.deps import NetvalveServiceDep
from app.api.v1.endpoints.netvalve._common import plain
from app.schemas.netvalve import StatusQuery
from app.schemas.payment import PaymentResponse
from app.services.netvalve.errors import PaymentNotFound

router = APIRouter()


@router.get(
    "/status",
    response_model=PaymentResponse,
    responses={
        202: {"model": PaymentResponse, "description": "An operation is still being settled."},
        **STOREFRONT_AUTH_ERRORS,
        **PaymentNotFound.schema(),
    },
)
async def get_payment_status(
    query: Annotated[StatusQuery, Query()],
    _: StorefrontPrincipal,
    service: NetvalveServiceDep,
) -> JSONResponse:
    """A payment's current state; refresh=true confirms it with NetValve first."""
    return plain(await service.status(query))
