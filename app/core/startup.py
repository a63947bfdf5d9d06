"""What an entry point does before anything else: one line, not a traceback, when it cannot start.

Every command a person types (`make run`, the Alembic wrapper, `uvicorn --factory
app.main:create_app`, the sandbox) checks its settings, and where it needs the database at once,
that it can reach it.
A failure ends the process with status 1 and one line on stderr that names the variable; it
never holds a secret value.
"""

import asyncio
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.core.config import ConfigurationError

CONNECT_TIMEOUT_SECONDS = 5.0


class DatabaseUnreachable(ConfigurationError):
    """The database a variable names cannot be reached; the message holds no password."""


def database_address(url: str) -> str:
    """host:port/database of a PostgreSQL URL (a socket directory for a Unix socket)."""
    try:
        parsed = make_url(url)
        port = parsed.port  # a port that is no number fails only here
    except (ArgumentError, ValueError):
        return "an unreadable URL"
    socket_dir = parsed.query.get("host")
    host = parsed.host or (socket_dir if isinstance(socket_dir, str) else "localhost")
    return f"{host}:{port or 5432}/{parsed.database or ''}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is PostgreSQL running there?)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s"
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return "password authentication failed"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "the database does not exist"
    if isinstance(exc, ValueError):  # asyncpg's own reading of the URL: a port that is no number
        return "the URL cannot be read"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


async def _connect(dsn: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_SECONDS)
    await connection.close()


def check_database(url: str, variable: str = "DATABASE_URL") -> None:
    """Connect once; raises DatabaseUnreachable naming `variable`, host and port, never the
    password."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        asyncio.run(_connect(dsn))
    except (
        OSError,
        TimeoutError,
        ValueError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        raise DatabaseUnreachable(
            f"cannot reach the database in {variable} at {database_address(url)}: {_reason(exc)}"
        ) from None


@contextmanager
def exit_on_startup_error(program: str = "netvalve-gateway") -> Iterator[None]:
    """Turns a ConfigurationError into status 1 and one line on stderr."""
    try:
        yield
    except ConfigurationError as exc:
        sys.exit(f"{program}: {exc}")
