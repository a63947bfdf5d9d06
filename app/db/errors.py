"""Recognising "this service's database cannot be reached", wherever it surfaces."""

import asyncio

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


def is_database_down(error: BaseException) -> bool:
    return isinstance(
        error,
        OperationalError
        | InterfaceError
        | OSError
        | asyncio.TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError,
    ) or (isinstance(error, DBAPIError) and error.connection_invalidated)
