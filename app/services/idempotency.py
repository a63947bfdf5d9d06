"""Idempotency-Key for the POSTs that move money (Stripe's model, the IETF draft's codes).

- First use: the key is claimed (one upsert, so two racing requests cannot both own it), the
  operation runs, and its final response is stored. The claim commits with the operation's
  first phase and the answer with its last (`app.db.session.Phases`): two commits in all.
- Same key, same body: the stored status and body are replayed.
- Same key, different body: 422. Same key while the first is still running: 409.

It stores and replays plain (status, body) pairs and knows nothing of what the operation does;
the route turns its domain result into that pair.

Keys are scoped (`scope`) to the API key that sent them. Requests refused by authentication or
validation never get this far, so they are not stored; neither are answers that are not final (202
pending, 409 conflicts, 429, 5xx): the key is released, still bound to its first body, and a
retry with the same key and body runs again, which is safe because every operation is also
guarded by the ledger's state.

A request that ends while the database is down cannot release its key then; this process
remembers it and releases it before its next idempotent request, so that the retry after the
outage runs instead of waiting for the lock to go stale.
"""

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import AppError
from app.db.errors import is_database_down
from app.db.session import Phases, transaction
from app.repositories.idempotency_key_repository import IdempotencyRepository

IDEMPOTENCY_HEADER = "Idempotency-Key"
# A first request that has held its key this long without finishing is taken to have died.
STALE_AFTER = timedelta(minutes=2)
KEY_RULES = "8 to 255 visible ASCII characters (! to ~, no spaces)"
_KEY = re.compile(r"^[\x21-\x7e]{8,255}$")
_NOT_FINAL = {202, 409, 429}
# (scope, key) -> locked_at of keys whose request ended while the database was down.
_unreleased: dict[tuple[str, str], datetime] = {}

log = structlog.get_logger(__name__)


class IdempotencyKeyMissing(AppError):
    """Money-moving requests need an Idempotency-Key header (8-255 visible ASCII characters)."""

    status_code = 400
    message = f"Send an Idempotency-Key header of {KEY_RULES}."


class IdempotencyKeyInvalid(AppError):
    """The Idempotency-Key header is not 8-255 visible ASCII characters."""

    status_code = 400
    message = f"The Idempotency-Key header must be {KEY_RULES}."


class IdempotencyKeyReused(AppError):
    """The Idempotency-Key was already used with a different request."""

    status_code = 422
    message = "This Idempotency-Key was used with a different request."


class IdempotencyKeyInFlight(AppError):
    """The first request with this Idempotency-Key is still running."""

    status_code = 409
    message = "A request with this Idempotency-Key is still in progress; retry shortly."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to send: the operation's own, or the stored one (`replayed`)."""

    status_code: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    replayed: bool = False


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    canonical = f"{method} {path}\n{body.model_dump_json()}"
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: timedelta) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl

    async def run(
        self,
        *,
        scope: str,
        key: str | None,
        method: str,
        path: str,
        body: BaseModel,
        request_id: str,
        action: Callable[[Phases], Awaitable[tuple[int, Any]]],
    ) -> Answer:
        """Run `action`, which answers a (status, body) pair, at most once per key and body.

        The claim is written in a transaction that `action` continues (`Phases`): the key and
        the operation's first phase commit together, and its answer is stored in the same
        commit as its last phase."""
        if key is None:
            raise IdempotencyKeyMissing
        if not _KEY.fullmatch(key):
            raise IdempotencyKeyInvalid
        if _unreleased:
            await release_after_outage(self._sessionmaker)
        digest, now = fingerprint(method, path, body), datetime.now(UTC)
        session = self._sessionmaker()
        try:
            await session.begin()
            stored = await self._claim(IdempotencyRepository(session), scope, key, digest, now)
        except BaseException:
            await session.close()
            raise
        if stored is not None:
            await session.close()  # nothing was written
            return stored
        phases = Phases(self._sessionmaker, session, caller_closes=True)
        try:
            answer = await action(phases)
        except AppError as error:
            status, payload, headers = error.status_code, error.body(request_id), error.headers
        except BaseException:
            await self._release(phases, scope, key, now)
            raise
        else:
            (status, payload), headers = answer, {}

        async def store(session: AsyncSession) -> None:
            repository = IdempotencyRepository(session)
            if status in _NOT_FINAL or status >= 500:
                # Only the lock this request took: if it ran so long that another request
                # took the key over, that request still holds it.
                await repository.release(scope, key, now)
            else:
                await repository.complete(scope, key, status, payload)

        try:
            await phases.close(store)
        except Exception as error:
            if is_database_down(error):
                _unreleased[(scope, key)] = now
            raise
        return Answer(status, payload, headers)

    async def _claim(
        self, repository: IdempotencyRepository, scope: str, key: str, digest: str, now: datetime
    ) -> Answer | None:
        """Own the key (None), or the stored answer to replay; refused if it is in use or
        bound to another body."""
        if await repository.claim(scope, key, digest, now, self._ttl):
            return None
        stored = await repository.get(scope, key)
        if stored is None:  # expired and removed between the two statements
            raise IdempotencyKeyInFlight
        if stored.fingerprint != digest:
            raise IdempotencyKeyReused
        if stored.response_status is not None and stored.response_body is not None:
            return Answer(stored.response_status, stored.response_body, replayed=True)
        if not await repository.take_over(scope, key, now - STALE_AFTER, now):
            raise IdempotencyKeyInFlight
        return None

    async def _release(self, phases: Phases, scope: str, key: str, locked_at: datetime) -> None:
        """Release the key of a request that failed; remembered for later if the database is
        down (the request's own error is what the caller is told)."""

        async def release(session: AsyncSession) -> None:
            await IdempotencyRepository(session).release(scope, key, locked_at)

        try:
            await phases.close(release)
        except Exception as error:
            if not is_database_down(error):
                raise
            _unreleased[(scope, key)] = locked_at
            log.warning("idempotency.release_deferred", error=type(error).__name__)


async def release_after_outage(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Release the keys this process could not release while the database was down (called
    before its next idempotent request, and by the sweep); how many there were."""
    held = dict(_unreleased)
    if not held:
        return 0
    async with transaction(sessionmaker) as session:
        repository = IdempotencyRepository(session)
        for (scope, key), locked_at in held.items():
            await repository.release(scope, key, locked_at)
    for entry, locked_at in held.items():
        if _unreleased.get(entry) == locked_at:
            del _unreleased[entry]
    log.info("idempotency.released_after_outage", keys=len(held))
    return len(held)
