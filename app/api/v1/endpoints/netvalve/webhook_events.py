"""Operators' view of the webhook inbox (admin key)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import AUTH_ERRORS, AdminPrincipal
from app.api.deps import WebhookServiceDep
from app.core.cursor import InvalidCursor
from app.core.errors import MalformedJSON
from app.models.webhook_event import WebhookEventStatus
from app.schemas.base import MAX_TRANSACTION_ID, DateTimeIn
from app.schemas.webhook_event import (
    WebhookEventDeleted,
    WebhookEventName,
    WebhookEventPage,
    WebhookEventResponse,
    WebhookEventUpdate,
)
from app.services.netvalve.webhooks import WebhookEventNotFound

router = APIRouter(prefix="/webhook-events", tags=["webhook-events"])
ERRORS = {**AUTH_ERRORS, **WebhookEventNotFound.schema()}


@router.get(
    "", response_model=WebhookEventPage, responses={**AUTH_ERRORS, **InvalidCursor.schema()}
)
async def list_webhook_events(
    _: AdminPrincipal,
    service: WebhookServiceDep,
    status: WebhookEventStatus | None = None,
    event_name: WebhookEventName | None = None,
    transaction_id: Annotated[int | None, Query(gt=0, le=MAX_TRANSACTION_ID)] = None,
    received_from: DateTimeIn | None = None,
    received_to: DateTimeIn | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> WebhookEventPage:
    """Stored webhook events, newest first, filtered; follow `next_cursor` for more."""
    return await service.list(
        status=status,
        event_name=event_name,
        transaction_id=transaction_id,
        received_from=received_from,
        received_to=received_to,
        cursor=cursor,
        limit=limit,
    )


@router.get("/{event_id}", response_model=WebhookEventResponse, responses=ERRORS)
async def get_webhook_event(
    event_id: uuid.UUID, _: AdminPrincipal, service: WebhookServiceDep
) -> WebhookEventResponse:
    """One stored webhook event."""
    return await service.get(event_id)


@router.patch(
    "/{event_id}",
    response_model=WebhookEventResponse,
    responses={**ERRORS, **MalformedJSON.schema()},
)
async def update_webhook_event(
    event_id: uuid.UUID, body: WebhookEventUpdate, _: AdminPrincipal, service: WebhookServiceDep
) -> WebhookEventResponse:
    """Add operator notes, or set status `received` to process the event again."""
    return await service.update(event_id, body)


@router.delete("/{event_id}", response_model=WebhookEventDeleted, responses=ERRORS)
async def delete_webhook_event(
    event_id: uuid.UUID, _: AdminPrincipal, service: WebhookServiceDep
) -> WebhookEventDeleted:
    """Soft-delete: hidden and never processed, but kept for audit."""
    return await service.delete(event_id)


@router.post("/{event_id}/replay", response_model=WebhookEventResponse, responses=ERRORS)
async def replay_webhook_event(
    event_id: uuid.UUID, _: AdminPrincipal, service: WebhookServiceDep
) -> WebhookEventResponse:
    """Apply the event again, through the same idempotent path as the worker."""
    return await service.replay(event_id)
