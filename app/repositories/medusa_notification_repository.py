"""Every query on medusa_notifications."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.medusa_notification import (
    MedusaEventType,
    MedusaNotification,
    MedusaNotificationStatus,
)
from app.schemas.medusa_notification import MedusaNotificationUpdate

PENDING = MedusaNotificationStatus.PENDING


class MedusaNotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, notification: MedusaNotification) -> None:
        self.session.add(notification)

    async def get(self, notification_id: uuid.UUID) -> MedusaNotification | None:
        return await self.session.get(MedusaNotification, notification_id, populate_existing=True)

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[MedusaNotification]:
        """Take up to `limit` due notifications for this worker (SKIP LOCKED: safe with several
        workers and processes), leased until `lease_until` and counted as an attempt, so that
        no other worker sends them meanwhile, and a worker that dies holding them cannot retry
        them forever."""
        due = (
            select(MedusaNotification.id)
            .where(
                MedusaNotification.status == PENDING,
                MedusaNotification.next_attempt_at <= now,
                or_(
                    MedusaNotification.locked_until.is_(None),
                    MedusaNotification.locked_until <= now,
                ),
            )
            .order_by(MedusaNotification.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self.session.execute(
            update(MedusaNotification)
            .where(MedusaNotification.id.in_(due.scalar_subquery()))
            .values(locked_until=lease_until, attempts=MedusaNotification.attempts + 1)
            .returning(MedusaNotification)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        # RETURNING follows no order: send them in the order they became due.
        return sorted(result.scalars(), key=lambda row: (row.next_attempt_at, row.created_at))

    async def record(
        self, notification_id: uuid.UUID, lease_until: datetime, changes: MedusaNotificationUpdate
    ) -> bool:
        """Write one attempt's result, only if this worker still holds the lease it sent under
        (a worker that outlived its lease must not overwrite the next one's result)."""
        result = await self.session.execute(
            update(MedusaNotification)
            .where(
                MedusaNotification.id == notification_id,
                MedusaNotification.locked_until == lease_until,
            )
            .values(**changes.model_dump(exclude_unset=True), locked_until=None)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, notification_ids: list[uuid.UUID], lease_until: datetime) -> int:
        """Hand back claimed notifications this worker will not send (it is stopping): due
        again at once, and the claim not counted as an attempt."""
        if not notification_ids:
            return 0
        result = await self.session.execute(
            update(MedusaNotification)
            .where(
                MedusaNotification.id.in_(notification_ids),
                MedusaNotification.locked_until == lease_until,
                MedusaNotification.status == PENDING,
            )
            .values(locked_until=None, attempts=MedusaNotification.attempts - 1)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def count_by_status(
        self,
    ) -> dict[MedusaNotificationStatus, tuple[int, datetime | None]]:
        """Per status, how many notifications, and when the oldest of them was written."""
        result = await self.session.execute(
            select(
                MedusaNotification.status, func.count(), func.min(MedusaNotification.created_at)
            ).group_by(MedusaNotification.status)
        )
        return {status: (int(count), oldest) for status, count, oldest in result}

    async def list(
        self,
        *,
        status: MedusaNotificationStatus | None,
        event_type: MedusaEventType | None,
        payment_id: uuid.UUID | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[MedusaNotification]:
        conditions: list[Any] = []
        if status is not None:
            conditions.append(MedusaNotification.status == status)
        if event_type is not None:
            conditions.append(MedusaNotification.event_type == event_type)
        if payment_id is not None:
            conditions.append(MedusaNotification.payment_id == payment_id)
        if after is not None:
            # Keyset pagination, newest first: stable while new notifications keep coming.
            conditions.append(
                tuple_(MedusaNotification.created_at, MedusaNotification.id) < tuple_(*after)
            )
        result = await self.session.execute(
            select(MedusaNotification)
            .where(and_(True, *conditions))
            .order_by(MedusaNotification.created_at.desc(), MedusaNotification.id.desc())
            .limit(limit)
        )
        return list(result.scalars())
