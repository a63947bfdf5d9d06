"""Every query on the stored Idempotency-Keys.

Every idempotent request runs a claim and a complete (or release), so those are SQLAlchemy Core
statements built once at import: no ORM statement compilation or result loading, and no
statement building or cache-key walk per call.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, null, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.idempotency_key import IdempotencyKey

_keys = cast(Table, IdempotencyKey.__table__)
# Not "scope" and "key": UPDATE reserves bind names equal to column names for its SET clause.
_SCOPE_KEY = (_keys.c.scope == bindparam("for_scope"), _keys.c.key == bindparam("for_key"))

_insert = insert(_keys).values(
    id=bindparam("id"),
    scope=bindparam("scope"),
    key=bindparam("key"),
    fingerprint=bindparam("fingerprint"),
    locked_at=bindparam("now"),
    expires_at=bindparam("expires_at"),
)
# An expired key is replaced in place, as if deleted and inserted anew; a live one is left alone
# and nothing comes back. One statement: of two racing claims, the second waits on the row and
# then sees it live.
_CLAIM = _insert.on_conflict_do_update(
    index_elements=[_keys.c.scope, _keys.c.key],
    set_={
        "id": _insert.excluded.id,
        "fingerprint": _insert.excluded.fingerprint,
        "response_status": null(),
        "response_body": null(),
        "locked_at": _insert.excluded.locked_at,
        "created_at": func.now(),
        "expires_at": _insert.excluded.expires_at,
    },
    where=_keys.c.expires_at < bindparam("now"),
).returning(_keys.c.id)
_COMPLETE = (
    update(_keys)
    .where(*_SCOPE_KEY)
    .values(
        response_status=bindparam("status"),
        response_body=bindparam("body"),
        locked_at=null(),
    )
)
_GET = select(IdempotencyKey).where(*_SCOPE_KEY)
_TAKE_OVER = (
    update(_keys)
    .where(
        *_SCOPE_KEY,
        _keys.c.response_status.is_(None),
        or_(_keys.c.locked_at.is_(None), _keys.c.locked_at < bindparam("stale_before")),
    )
    .values(locked_at=bindparam("now"))
    .returning(_keys.c.id)
)
_RELEASE = update(_keys).where(*_SCOPE_KEY, _keys.c.response_status.is_(None))
_RELEASE_ALL = _RELEASE.values(locked_at=null())
_RELEASE_MINE = _RELEASE.where(_keys.c.locked_at == bindparam("held_since")).values(
    locked_at=null()
)


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self, scope: str, key: str, fingerprint: str, now: datetime, ttl: timedelta
    ) -> bool:
        """True if this request now owns the key; False if a row for it already exists."""
        result = await self.session.execute(
            _CLAIM,
            {
                "id": uuid.uuid4(),
                "scope": scope,
                "key": key,
                "fingerprint": fingerprint,
                "now": now,
                "expires_at": now + ttl,
            },
        )
        return result.scalar_one_or_none() is not None

    async def get(self, scope: str, key: str) -> IdempotencyKey | None:
        result = await self.session.execute(_GET, {"for_scope": scope, "for_key": key})
        return result.scalar_one_or_none()

    async def take_over(self, scope: str, key: str, stale_before: datetime, now: datetime) -> bool:
        """Re-own a key that no request holds: released without a final answer, or whose first
        request died without finishing (its lock went stale)."""
        result = await self.session.execute(
            _TAKE_OVER,
            {"for_scope": scope, "for_key": key, "stale_before": stale_before, "now": now},
        )
        return result.scalar_one_or_none() is not None

    async def complete(self, scope: str, key: str, status: int, body: dict[str, Any]) -> None:
        await self.session.execute(
            _COMPLETE, {"for_scope": scope, "for_key": key, "status": status, "body": body}
        )

    async def release(self, scope: str, key: str, locked_at: datetime | None = None) -> None:
        """Unlock a key whose answer was not final. The row stays, and with it the body the key
        was first used with: a retry may run again, a different request is still refused.

        With `locked_at`, only the lock taken then: a later holder's lock is left alone."""
        params: dict[str, Any] = {"for_scope": scope, "for_key": key}
        if locked_at is None:
            await self.session.execute(_RELEASE_ALL, params)
        else:
            await self.session.execute(_RELEASE_MINE, params | {"held_since": locked_at})
