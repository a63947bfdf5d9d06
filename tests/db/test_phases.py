"""`Phases`: an operation's transactions with its caller's writes folded into the first and the
last, on the real database (other connections see only what is committed)."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.session import Phases, create_sessionmaker
from app.repositories.idempotency_key_repository import IdempotencyRepository

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=1)


class Failed(Exception):
    pass


@pytest_asyncio.fixture
async def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest_asyncio.fixture
async def keys(medusa_writer: asyncpg.Connection) -> AsyncIterator[list[str]]:
    """Keys a test claims, read by another connection and removed afterwards."""
    made: list[str] = []
    yield made
    await medusa_writer.execute("DELETE FROM idempotency_keys WHERE key = ANY($1)", made)


async def claimed(sessionmaker: async_sessionmaker[AsyncSession], keys: list[str]) -> Phases:
    """A caller's open transaction holding a claimed key, handed over as Phases."""
    key = f"phases-{uuid.uuid4().hex}"
    keys.append(key)
    session = sessionmaker()
    await session.begin()
    assert await IdempotencyRepository(session).claim("scope", key, "f" * 64, NOW, TTL)
    return Phases(sessionmaker, session, caller_closes=True)


async def stored(medusa: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await medusa.fetchrow(
        "SELECT fingerprint, response_status FROM idempotency_keys WHERE key = $1", key
    )
    return row


async def answer(session: AsyncSession, key: str, status: int = 200) -> None:
    await IdempotencyRepository(session).complete("scope", key, status, {"ok": True})


async def rewrite(session: AsyncSession, key: str) -> None:
    """The operation's own write (any write on a row the test can read back)."""
    repository = IdempotencyRepository(session)
    await repository.release("scope", key)  # sets locked_at NULL: visible, harmless
    stored_key = await repository.get("scope", key)
    assert stored_key is not None
    stored_key.fingerprint = "o" * 64
    await session.flush()


class TestTheFirstPhase:
    async def test_commits_the_callers_claim_with_the_operations_writes(
        self, sessionmaker, keys, medusa_writer
    ):
        phases = await claimed(sessionmaker, keys)
        async with phases.phase() as session:
            await rewrite(session, keys[0])
            assert await stored(medusa_writer, keys[0]) is None  # nothing committed yet

        row = await stored(medusa_writer, keys[0])
        assert row is not None
        assert row["fingerprint"] == "o" * 64
        await phases.close(lambda session: answer(session, keys[0]))

    async def test_that_fails_rolls_back_only_its_own_writes_and_the_answer_is_stored(
        self, sessionmaker, keys, medusa_writer
    ):
        phases = await claimed(sessionmaker, keys)

        async def fail_after_writing() -> None:
            async with phases.phase() as session:
                await rewrite(session, keys[0])
                raise Failed

        with pytest.raises(Failed):
            await fail_after_writing()

        await phases.close(lambda session: answer(session, keys[0], 409))

        row = await stored(medusa_writer, keys[0])
        assert row is not None
        assert (row["fingerprint"], row["response_status"]) == ("f" * 64, 409)


class TestTheLastPhase:
    async def test_held_commits_with_the_callers_answer(self, sessionmaker, keys, medusa_writer):
        phases = await claimed(sessionmaker, keys)
        async with phases.phase():
            pass
        async with phases.phase() as session:
            await rewrite(session, keys[0])
            phases.hold()
        row = await stored(medusa_writer, keys[0])
        assert row is not None
        assert row["fingerprint"] == "f" * 64  # held: not committed

        await phases.close(lambda session: answer(session, keys[0], 201))

        row = await stored(medusa_writer, keys[0])
        assert row is not None
        assert (row["fingerprint"], row["response_status"]) == ("o" * 64, 201)

    async def test_held_is_rolled_back_with_an_answer_that_cannot_be_written(
        self, sessionmaker, keys, medusa_writer
    ):
        # The outcome and the answer are one commit: neither lands without the other (the
        # sweep settles the attempt the first phase left open).
        phases = await claimed(sessionmaker, keys)
        async with phases.phase():
            pass
        async with phases.phase() as session:
            await rewrite(session, keys[0])
            phases.hold()

        async def broken(session: AsyncSession) -> None:
            raise Failed

        with pytest.raises(Failed):
            await phases.close(broken)

        row = await stored(medusa_writer, keys[0])
        assert row is not None
        assert (row["fingerprint"], row["response_status"]) == ("f" * 64, None)

    async def test_not_held_commits_alone(self, sessionmaker, keys, medusa_writer):
        phases = await claimed(sessionmaker, keys)
        async with phases.phase():
            pass
        async with phases.phase() as session:
            await rewrite(session, keys[0])

        row = await stored(medusa_writer, keys[0])
        assert row is not None
        assert row["fingerprint"] == "o" * 64
        await phases.close(lambda session: answer(session, keys[0]))
        row = await stored(medusa_writer, keys[0])
        assert row is not None
        assert row["response_status"] == 200

    async def test_hold_without_a_caller_commits_as_usual(self, sessionmaker, keys, medusa_writer):
        key = f"phases-{uuid.uuid4().hex}"
        keys.append(key)
        phases = Phases(sessionmaker)
        async with phases.phase() as session:
            assert await IdempotencyRepository(session).claim("scope", key, "f" * 64, NOW, TTL)
            phases.hold()

        assert await stored(medusa_writer, key) is not None
