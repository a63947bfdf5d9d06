"""Every query on webhook_events."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.webhook_event import WebhookEvent, WebhookEventStatus

DUE = (WebhookEventStatus.RECEIVED, WebhookEventStatus.PENDING_MATCH, WebhookEventStatus.FAILED)

# Intake's one statement, built once: an ORM-enabled INSERT on the model (the inbox stays on the
# ORM; no unit of work for a row that is written once and read back only by id), a no-op for a
# redelivery.
_INSERT_NEW = (
    insert(WebhookEvent)
    .on_conflict_do_nothing(index_elements=[WebhookEvent.source, WebhookEvent.dedup_key])
    .returning(WebhookEvent.id)
)


class WebhookEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, values: dict[str, Any]) -> uuid.UUID | None:
        """Store a delivery; None when its dedup key is already stored (a redelivery)."""
        result = await self.session.execute(_INSERT_NEW, {"id": uuid.uuid4(), **values})
        inserted: uuid.UUID | None = result.scalar_one_or_none()
        return inserted

    async def get(
        self, event_id: uuid.UUID, *, include_deleted: bool = False
    ) -> WebhookEvent | None:
        statement = select(WebhookEvent).where(WebhookEvent.id == event_id)
        if not include_deleted:
            statement = statement.where(WebhookEvent.deleted_at.is_(None))
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[uuid.UUID]:
        """Take up to `limit` due events for this worker (SKIP LOCKED: safe with several), and
        push their next attempt out by `lease` so that no other worker takes them meanwhile."""
        due = (
            select(WebhookEvent.id)
            .where(
                WebhookEvent.status.in_(DUE),
                WebhookEvent.deleted_at.is_(None),
                or_(WebhookEvent.next_attempt_at.is_(None), WebhookEvent.next_attempt_at <= now),
            )
            .order_by(WebhookEvent.received_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=now + lease, attempts=WebhookEvent.attempts + 1)
            .returning(WebhookEvent.id, WebhookEvent.received_at)
            .execution_options(synchronize_session=False)
        )
        # RETURNING follows no order: hand them out oldest first, as they arrived.
        return [row.id for row in sorted(result, key=lambda row: (row.received_at, row.id))]

    async def release(self, event_ids: list[uuid.UUID], lease_until: datetime) -> int:
        """Hand back claimed events this worker will not process (it is stopping): due again at
        once, and the claim not counted as an attempt. An event already finished, or claimed
        anew since, no longer holds this lease and is left alone."""
        if not event_ids:
            return 0
        result = await self.session.execute(
            update(WebhookEvent)
            .where(
                WebhookEvent.id.in_(event_ids),
                WebhookEvent.next_attempt_at == lease_until,
                WebhookEvent.status.in_(DUE),
            )
            .values(next_attempt_at=None, attempts=WebhookEvent.attempts - 1)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def count_by_status(self) -> dict[WebhookEventStatus, int]:
        result = await self.session.execute(
            select(WebhookEvent.status, func.count())
            .where(WebhookEvent.deleted_at.is_(None))
            .group_by(WebhookEvent.status)
        )
        return {status: int(count) for status, count in result}

    async def list(
        self,
        *,
        status: WebhookEventStatus | None,
        event_name: str | None,
        transaction_id: int | None,
        received_from: datetime | None,
        received_to: datetime | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[WebhookEvent]:
        conditions: list[Any] = [WebhookEvent.deleted_at.is_(None)]
        if status is not None:
            conditions.append(WebhookEvent.status == status)
        if event_name is not None:
            conditions.append(WebhookEvent.event_name == event_name)
        if transaction_id is not None:
            conditions.append(WebhookEvent.transaction_id == transaction_id)
        if received_from is not None:
            conditions.append(WebhookEvent.received_at >= received_from)
        if received_to is not None:
            conditions.append(WebhookEvent.received_at < received_to)
        if after is not None:
            # Keyset pagination, newest first: stable while new events keep arriving.
            conditions.append(tuple_(WebhookEvent.received_at, WebhookEvent.id) < tuple_(*after))
        result = await self.session.execute(
            select(WebhookEvent)
            .where(and_(*conditions))
            .order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc())
            .limit(limit)
        )
        return list(result.scalars())
