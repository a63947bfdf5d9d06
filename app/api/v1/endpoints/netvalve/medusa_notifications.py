"""Operators' view of the outbox of notifications to Medusa (admin key)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import AUTH_ERRORS, AdminPrincipal
from app.api.deps import MedusaNotificationServiceDep
from app.core.cursor import InvalidCursor
from app.models.medusa_notification import MedusaEventType, MedusaNotificationStatus
from app.schemas.medusa_notification import MedusaNotificationPage, MedusaNotificationResponse
from app.services.medusa_notifications import MedusaNotificationNotFound

router = APIRouter(prefix="/medusa-notifications", tags=["medusa-notifications"])
ERRORS = {**AUTH_ERRORS, **MedusaNotificationNotFound.schema()}


@router.get(
    "",
    response_model=MedusaNotificationPage,
    responses={**AUTH_ERRORS, **InvalidCursor.schema()},
)
async def list_medusa_notifications(
    _: AdminPrincipal,
    service: MedusaNotificationServiceDep,
    status: MedusaNotificationStatus | None = None,
    event_type: MedusaEventType | None = None,
    payment_id: uuid.UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MedusaNotificationPage:
    """Notifications to Medusa, newest first: `status=failed` lists the ones given up on."""
    return await service.list(
        status=status,
        event_type=event_type,
        payment_id=payment_id,
        cursor=cursor,
        limit=limit,
    )


@router.get("/{notification_id}", response_model=MedusaNotificationResponse, responses=ERRORS)
async def get_medusa_notification(
    notification_id: uuid.UUID, _: AdminPrincipal, service: MedusaNotificationServiceDep
) -> MedusaNotificationResponse:
    """One notification to Medusa, with its body and its last attempt's outcome."""
    return await service.get(notification_id)


@router.post(
    "/{notification_id}/replay", response_model=MedusaNotificationResponse, responses=ERRORS
)
async def replay_medusa_notification(
    notification_id: uuid.UUID, _: AdminPrincipal, service: MedusaNotificationServiceDep
) -> MedusaNotificationResponse:
    """Send it again (same webhook-id and body, attempts reset): `pending` until the worker
    delivers it. Idempotent."""
    return await service.replay(notification_id)
