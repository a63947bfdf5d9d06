"""The Idempotency-Key repository's statements, on the real table."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.repositories.idempotency_key_repository import IdempotencyRepository

pytestmark = pytest.mark.asyncio

TTL = timedelta(hours=24)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class TestClaim:
    async def test_a_new_key_is_owned_and_locked(self, db_session):
        keys, key = IdempotencyRepository(db_session), uuid.uuid4().hex

        assert await keys.claim("scope", key, "a" * 64, NOW, TTL) is True

        stored = await keys.get("scope", key)
        assert stored is not None
        assert (stored.fingerprint, stored.locked_at, stored.expires_at) == (
            "a" * 64,
            NOW,
            NOW + TTL,
        )
        assert stored.response_status is None

    async def test_a_live_key_is_not_owned_again_and_is_left_as_it_was(self, db_session):
        keys, key = IdempotencyRepository(db_session), uuid.uuid4().hex
        await keys.claim("scope", key, "a" * 64, NOW, TTL)
        await keys.complete("scope", key, 201, {"id": "first"})

        assert await keys.claim("scope", key, "b" * 64, NOW + TTL / 2, TTL) is False

        stored = await keys.get("scope", key)
        assert stored is not None
        await db_session.refresh(stored)
        assert (stored.fingerprint, stored.response_status, stored.response_body) == (
            "a" * 64,
            201,
            {"id": "first"},
        )
        assert stored.locked_at is None

    async def test_an_expired_key_is_replaced_by_the_new_request(self, db_session):
        keys, key = IdempotencyRepository(db_session), uuid.uuid4().hex
        await keys.claim("scope", key, "a" * 64, NOW, TTL)
        await keys.complete("scope", key, 201, {"id": "first"})
        later = NOW + TTL + timedelta(seconds=1)

        assert await keys.claim("scope", key, "b" * 64, later, TTL) is True

        stored = await keys.get("scope", key)
        assert stored is not None
        await db_session.refresh(stored)
        assert (stored.fingerprint, stored.locked_at, stored.expires_at) == (
            "b" * 64,
            later,
            later + TTL,
        )
        assert (stored.response_status, stored.response_body) == (None, None)

    async def test_the_scope_separates_equal_keys(self, db_session):
        keys, key = IdempotencyRepository(db_session), uuid.uuid4().hex

        assert await keys.claim("one", key, "a" * 64, NOW, TTL) is True
        assert await keys.claim("two", key, "a" * 64, NOW, TTL) is True


class TestRelease:
    async def test_only_the_named_lock_is_released(self, db_session):
        keys, key = IdempotencyRepository(db_session), uuid.uuid4().hex
        await keys.claim("scope", key, "a" * 64, NOW, TTL)
        taken_over_at = NOW + timedelta(minutes=5)
        assert await keys.take_over("scope", key, taken_over_at, taken_over_at) is True

        await keys.release("scope", key, NOW)
        stored = await keys.get("scope", key)
        assert stored is not None
        await db_session.refresh(stored)
        assert stored.locked_at == taken_over_at

        await keys.release("scope", key, taken_over_at)
        await db_session.refresh(stored)
        assert stored.locked_at is None

    async def test_a_completed_key_keeps_its_answer(self, db_session):
        keys, key = IdempotencyRepository(db_session), uuid.uuid4().hex
        await keys.claim("scope", key, "a" * 64, NOW, TTL)
        await keys.complete("scope", key, 200, {"ok": True})

        await keys.release("scope", key)
        assert await keys.take_over("scope", key, NOW + TTL, NOW + TTL) is False

        stored = await keys.get("scope", key)
        assert stored is not None
        await db_session.refresh(stored)
        assert (stored.response_status, stored.response_body) == (200, {"ok": True})
