"""The engine, the sessionmaker, and the one way to open a transaction.

The transaction rule: nothing holds a transaction open across a network call to NetValve. A
money operation runs in short phases (Brandur Leach's "atomic phases"), each opened through
`transaction()`: claim and record the attempt (commit); call NetValve with no transaction open;
apply the outcome and store the answer (commit). A crash between phases leaves an attempt marked
in flight, which the sweep settles from NetValve's records. Services and repositories never call
`commit()`; leaving the `async with` block commits, an exception rolls back.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.require_database_url(),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        pool_pre_ping=True,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One short transaction: committed when the block ends, rolled back on any exception."""
    async with sessionmaker.begin() as session:
        yield session
