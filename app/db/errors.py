"""Recognising "this service's database cannot be reached", wherever it surfaces."""

import asyncio

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


def is_database_down(error: BaseException) -> bool:
    """Unreachable, or every pooled connection busy past the pool's checkout timeout: either
    way the caller should retry shortly (503)."""
    return isinstance(
        error,
        PoolTimeout
        | OperationalError
        | InterfaceError
        | OSError
        | asyncio.TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError,
    ) or (isinstance(error, DBAPIError) and error.connection_invalidated)
