"""Operators' view of extra charges: approvals NetValve holds beyond a payment's own (admin)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import AUTH_ERRORS, AdminPrincipal
from app.api.deps import ExtraChargeServiceDep
from app.core.money import from_minor_units
from app.models.extra_charge import ExtraCharge, ExtraChargeStatus
from app.schemas.extra_charge import ExtraChargePage, ExtraChargeResponse
from app.services.netvalve.extra_charges import ExtraChargeNotFound

router = APIRouter(prefix="/extra-charges", tags=["extra-charges"])


def _response(charge: ExtraCharge) -> ExtraChargeResponse:
    return ExtraChargeResponse(
        id=charge.id,
        payment_id=charge.payment_id,
        transaction_id=charge.transaction_id,
        operation=charge.operation,
        currency=charge.currency,
        amount=from_minor_units(charge.amount_minor, charge.currency),
        status=charge.status,
        reversed_amount=from_minor_units(charge.reversed_minor, charge.currency),
        reversal_transaction_id=charge.reversal_transaction_id,
        reverse_tries=charge.reverse_tries,
        detail=charge.detail,
        reversed_at=charge.reversed_at,
        created_at=charge.created_at,
        updated_at=charge.updated_at,
    )


@router.get("", response_model=ExtraChargePage, responses=AUTH_ERRORS)
async def list_extra_charges(
    _: AdminPrincipal,
    service: ExtraChargeServiceDep,
    status: ExtraChargeStatus | None = None,
    payment_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ExtraChargePage:
    """Extra charges, newest first: `status=open` lists money held that Medusa does not show."""
    charges = await service.search(status=status, payment_id=payment_id, limit=limit)
    return ExtraChargePage(items=[_response(charge) for charge in charges])


@router.post(
    "/{charge_id}/reverse",
    response_model=ExtraChargeResponse,
    responses={**AUTH_ERRORS, **ExtraChargeNotFound.schema()},
)
async def reverse_extra_charge(
    charge_id: uuid.UUID, _: AdminPrincipal, service: ExtraChargeServiceDep
) -> ExtraChargeResponse:
    """Void (authorization) or fully refund (sale) the extra charge at NetValve; safe to repeat."""
    return _response(await service.reverse(charge_id))
