"""Every query on the stored Idempotency-Keys."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.idempotency_key import IdempotencyKey


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self, scope: str, key: str, fingerprint: str, now: datetime, ttl: timedelta
    ) -> bool:
        """True if this request now owns the key; False if a row for it already exists."""
        await self.session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.scope == scope,
                IdempotencyKey.key == key,
                IdempotencyKey.expires_at < now,
            )
        )
        result = await self.session.execute(
            insert(IdempotencyKey)
            .values(
                id=uuid.uuid4(),
                scope=scope,
                key=key,
                fingerprint=fingerprint,
                locked_at=now,
                expires_at=now + ttl,
            )
            .on_conflict_do_nothing(index_elements=["scope", "key"])
            .returning(IdempotencyKey.id)
        )
        return result.scalar_one_or_none() is not None

    async def get(self, scope: str, key: str) -> IdempotencyKey | None:
        result = await self.session.execute(
            select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        )
        return result.scalar_one_or_none()

    async def take_over(self, scope: str, key: str, stale_before: datetime, now: datetime) -> bool:
        """Re-own a key that no request holds: released without a final answer, or whose first
        request died without finishing (its lock went stale)."""
        result = await self.session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.scope == scope,
                IdempotencyKey.key == key,
                IdempotencyKey.response_status.is_(None),
                or_(IdempotencyKey.locked_at.is_(None), IdempotencyKey.locked_at < stale_before),
            )
            .values(locked_at=now)
            .returning(IdempotencyKey.id)
        )
        return result.scalar_one_or_none() is not None

    async def complete(self, scope: str, key: str, status: int, body: dict[str, Any]) -> None:
        await self.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
            .values(response_status=status, response_body=body, locked_at=None)
        )

    async def release(self, scope: str, key: str, locked_at: datetime | None = None) -> None:
        """Unlock a key whose answer was not final. The row stays, and with it the body the key
        was first used with: a retry may run again, a different request is still refused.

        With `locked_at`, only the lock taken then: a later holder's lock is left alone."""
        condition = [
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
            IdempotencyKey.response_status.is_(None),
        ]
        if locked_at is not None:
            condition.append(IdempotencyKey.locked_at == locked_at)
        await self.session.execute(update(IdempotencyKey).where(*condition).values(locked_at=None))
