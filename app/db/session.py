"""The engine, the sessionmaker, and the one way to open a transaction.

The transaction rule: nothing holds a transaction open across a network call to NetValve. A
money operation runs in two short phases (Brandur Leach's "atomic phases") through `Phases`:
claim the Idempotency-Key, claim the payment and record the attempt (one commit); call NetValve
with no transaction open; apply the outcome and store the answer (one commit). A crash between
them leaves an attempt marked in flight, which the sweep settles from NetValve's records.
Everything else opens one short transaction through `transaction()`. Services and repositories
never call `commit()`; leaving the `async with` block commits, an exception rolls back.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings
from app.db.errors import is_database_down


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


class Phases:
    """The short transactions of one operation that calls NetValve between them, with its
    caller's writes folded into the first and the last: a money operation commits twice.

    The caller (the Idempotency-Key layer) opens a transaction, writes its claim, and hands it
    over (`opened`). The operation's first `phase()` continues that transaction inside a
    SAVEPOINT and commits both together: a failure there rolls back only the operation's own
    writes, and the claim stays open for the caller's answer. After the NetValve call, a phase
    that calls `hold()` (the operation has nothing left to write) is not committed when its
    block ends; the caller's `close()` adds its answer to it and commits: the outcome and the
    stored answer are one commit. A crash between the two commits leaves a claimed attempt
    with no answer, which the sweep settles from NetValve's records, as it always has.

    At most one transaction is open at a time, so an operation never holds two connections
    (which a full pool could deadlock) or waits on its own row locks. A phase that is neither
    the caller's nor held commits when its block ends, exactly as `transaction()` does.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        opened: AsyncSession | None = None,
        *,
        caller_closes: bool = False,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._open = opened
        self._caller_closes = caller_closes
        self._hold = False

    @asynccontextmanager
    async def phase(self) -> AsyncIterator[AsyncSession]:
        """One phase: continues the open transaction (in a savepoint) if there is one, else
        begins its own. Committed when the block ends, unless the block called `hold()`."""
        self._hold = False
        session = self._open
        if session is None:
            session = self._open = self._sessionmaker()
            try:
                await session.begin()
                yield session
            except BaseException:
                self._open = None
                await session.close()  # rolls back
                raise
        else:
            try:
                async with session.begin_nested():
                    yield session
            except BaseException as error:
                if is_database_down(error):
                    # The connection died with the caller's claim on it: nothing of it was
                    # committed, and the caller's answer goes in a transaction of its own.
                    self._open = None
                    await session.close()
                raise
        if self._hold:
            self._hold = False
            return
        self._open = None
        try:
            await session.commit()
        finally:
            await session.close()

    def hold(self) -> None:
        """Leave this phase's transaction open for the caller's closing writes (only when a
        caller will `close()`; otherwise the phase commits as usual). Call it in the last
        phase only: nothing may touch the database between it and `close()`."""
        self._hold = self._caller_closes

    async def close(self, write: Callable[[AsyncSession], Awaitable[None]]) -> None:
        """The caller's closing writes: committed with the open transaction (a held phase, or
        its own claim if the operation never committed it), else in a transaction of their
        own."""
        session, self._open = self._open, None
        if session is None:
            async with transaction(self._sessionmaker) as fresh:
                await write(fresh)
            return
        try:
            await write(session)
            await session.commit()
        finally:
            await session.close()
