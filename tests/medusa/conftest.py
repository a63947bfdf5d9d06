"""A real Medusa 2.21.2 store beside this service and the NetValve sandbox, on loopback only.

Once per run: `npm ci` of integrations/medusa-test-store (skipped while node_modules was made
from the same lockfile by the same Node), the provider package built and packed from
integrations/medusa-payment-netvalve and installed into the store from its tarball, a fresh
database for Medusa on the suite's PostgreSQL, `medusa db:migrate`, the seed script (Medusa's
own workflows) with an admin user, then `medusa start`. The service runs as a uvicorn subprocess
(restarted on the same port to switch between sale and manual capture), the sandbox in a thread
of this process. The service's notifications reach Medusa through a `WebhookRelay` that passes
every request on byte for byte and keeps a copy, so a test can replay a real delivery.

Every process's output goes to the log audit. Without npm (or node) the whole suite is skipped
with a reason that says so; with npm, every failure is a failure.
"""

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from alembic import command
from app.sandbox.server import ThreadedServer
from tests.conftest import PROJECT_ROOT, Databases, alembic_config
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.environment import bare_env
from tests.fixtures.gateway import recording_sandbox, sandbox_headers
from tests.fixtures.log_audit import audited_output
from tests.fixtures.ports import free_port
from tests.multiprocess.conftest import ServiceProcess, replica_env

STORE_DIR = PROJECT_ROOT / "integrations" / "medusa-test-store"
PROVIDER_DIR = PROJECT_ROOT / "integrations" / "medusa-payment-netvalve"
PROVIDER_ID = "pp_netvalve_netvalve"
HOOK_PATH = "/hooks/payment/netvalve_netvalve"

# Test credentials: module constants, so the log audit looks for them in every output.
MEDUSA_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"netvalve-medusa-e2e-test-hmac-32b").decode()
MEDUSA_GATEWAY_KEY = "mdz_test_5c2e8a1f7b3d9e0c4a6f2b8d"
MEDUSA_ADMIN_PASSWORD = "medusa-admin-test-pw-7e3a9c1f"
MEDUSA_JWT_SECRET = "medusa-jwt-test-secret-2b8e4d6f0a1c"
MEDUSA_COOKIE_SECRET = "medusa-cookie-test-secret-9d1f3b5e7a2c"
MEDUSA_ADMIN_EMAIL = "merchant@example.com"

# The sandbox keeps a 1002.00 sale pending this long; the service's budget for waiting on an
# unsettled outcome is 0, so Medusa's cart completion sees the pending answer at once.
SANDBOX_PENDING_SECONDS = 3.0
# What the tests allow for Medusa to act on a notification: Medusa 2.21.2 holds each one
# 5 s before its provider sees it (see medusa-config.ts), then runs its workflows.
SETTLE_TIMEOUT = 45.0

NPM_TIMEOUT = 900


def _tool_missing() -> str | None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return tool
    return None


# --- npm --------------------------------------------------------------------------------------


def run_logged(
    name: str, argv: list[str], cwd: Path, env: dict[str, str], timeout: float = NPM_TIMEOUT
) -> str:
    """Run a command with its output in the log audit; fail the test with its tail on error."""
    log = audited_output(name)
    started = time.monotonic()
    with log.open("wb") as out:
        try:
            code = subprocess.run(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
    text = log.read_text(encoding="utf-8", errors="replace")
    elapsed = time.monotonic() - started
    if code != 0:
        tail = "\n".join(text.splitlines()[-60:])
        pytest.fail(f"`{' '.join(argv)}` in {cwd} failed ({code}) after {elapsed:.0f} s:\n{tail}")
    TIMINGS.append((name, elapsed))
    return text


TIMINGS: list[tuple[str, float]] = []


def node_env(**variables: str) -> dict[str, str]:
    return bare_env(
        MEDUSA_DISABLE_TELEMETRY="true",
        NO_UPDATE_NOTIFIER="1",
        npm_config_update_notifier="false",
        npm_config_fund="false",
        npm_config_audit="false",
        **variables,
    )


def npm_ci(directory: Path, name: str) -> None:
    """`npm ci`, unless node_modules was made by `npm ci` from this very lockfile and Node."""
    lock = directory / "package-lock.json"
    if not lock.exists():
        pytest.fail(f"{lock} is missing: `npm ci` needs the committed lockfile")
    node = subprocess.run(
        [str(shutil.which("node")), "--version"], capture_output=True, text=True, check=True
    )
    digest = hashlib.sha256(lock.read_bytes() + node.stdout.encode()).hexdigest()
    stamp = directory / "node_modules" / ".netvalve-npm-ci"
    if stamp.exists() and stamp.read_text() == digest:
        return
    run_logged(f"{name}-npm-ci", ["npm", "ci"], directory, node_env())
    stamp.write_text(digest)


def pack_provider(destination: Path) -> Path:
    """The provider as a store installs it: `npm ci && npm run build && npm pack`."""
    if not (PROVIDER_DIR / "package.json").exists():
        pytest.fail(f"the provider package is missing: {PROVIDER_DIR}")
    npm_ci(PROVIDER_DIR, "provider")
    run_logged("provider-build", ["npm", "run", "build"], PROVIDER_DIR, node_env())
    output = run_logged(
        "provider-pack",
        ["npm", "pack", "--json", "--pack-destination", str(destination)],
        PROVIDER_DIR,
        node_env(),
    )
    packed = json.loads(output[output.index("[") :])
    return destination / str(packed[0]["filename"])


# --- databases ----------------------------------------------------------------------------------


def medusa_database_url(url: str) -> str:
    """The suite's SQLAlchemy URL as Medusa takes it.

    The embedded server listens on a Unix socket only (`?host=/dir`). MikroORM reads the host
    from the URL's authority, so the socket directory goes there percent-encoded (node-postgres
    decodes it too); `sslmode=disable`, since Medusa turns SSL on for any host that is not
    localhost and the socket has none."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    query = parse_qs(parts.query)
    user = quote(parts.username or "postgres", safe="")
    password = f":{quote(parts.password, safe='')}" if parts.password else ""
    socket_dir = query.pop("host", [None])[0]
    host = quote(socket_dir, safe="") if socket_dir else parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port and not socket_dir else ""
    extra = "&".join(f"{key}={value[0]}" for key, value in query.items())
    if not any(key.startswith("ssl") for key in query):
        extra = "&".join(filter(None, [extra, "sslmode=disable"]))
    return f"postgresql://{user}{password}@{host}{port}{parts.path}?{extra}"


# --- the relay between the service and Medusa -------------------------------------------------


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    medusa_status: int | None

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class WebhookRelay:
    """Passes each notification the service posts on to Medusa unchanged (same bytes, same
    signing headers) and answers with Medusa's status; keeps a copy of each. While
    `swallowing`, a notification is kept and answered 200 but never reaches Medusa."""

    target: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    swallowing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        app = FastAPI()

        @app.post("/hooks/payment/{provider}")
        async def relay(provider: str, request: Request) -> Response:
            body = await request.body()
            headers = {
                name: value
                for name, value in request.headers.items()
                if name.startswith("webhook-") or name == "content-type"
            }
            status = None
            if not self.swallowing:
                async with httpx.AsyncClient(timeout=10) as client:
                    answer = await client.post(
                        f"{self.target}/hooks/payment/{provider}", content=body, headers=headers
                    )
                status = answer.status_code
            with self.lock:
                self.deliveries.append(Delivery(request.url.path, headers, body, status))
            return Response(status_code=status or 200)

        self.server = ThreadedServer(app)

    def for_session(self, session_id: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.json["data"].get("session_id") == session_id]


# --- processes ------------------------------------------------------------------------------


class MedusaProcess:
    """`medusa start` in the store's directory, in a process group of its own."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = audited_output("medusa")
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(STORE_DIR / "node_modules" / ".bin" / "medusa"), "start"],
            cwd=STORE_DIR,
            env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"Medusa exited with {self.process.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        pytest.fail(f"Medusa was not ready in {timeout} s:\n{self.tail()}")

    def stop(self) -> None:
        keep = os.environ.get("MEDUSA_E2E_KEEP_LOGS")
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
        if keep:  # a directory to keep Medusa's whole log in, for a look after the run
            shutil.copy(self.log_path, Path(keep) / "medusa.log")

    def tail(self, count: int = 60) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-count:])

    def lines(self, pattern: str) -> list[str]:
        """Medusa's log lines that match `pattern` (a regular expression)."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if re.search(pattern, line)]


class Gateway:
    """This service, restartable on one port in either capture mode; Medusa's provider is
    configured with that port once."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode: str | None = None
        self.process: ServiceProcess | None = None
        self.http = httpx.Client(
            base_url=f"{self.url}/api/v1/netvalve",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=15,
        )

    def use(self, mode: str) -> None:
        if self.mode == mode and self.process and self.process.process.poll() is None:
            return
        self.stop()
        env = {**self.env, "NETVALVE_CAPTURE_MODE": mode}
        self.process = ServiceProcess(f"gateway-{mode}", env, self.workdir, port=self.port)
        self.process.wait_ready()
        self.mode = mode

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def requests_to(self, path: str) -> int:
        """How many requests for `path` the running process has logged."""
        assert self.process is not None
        return sum(1 for line in self.process.log_lines() if line.get("path") == path)

    def status(self, payment_session_id: str) -> dict[str, Any]:
        answer = self.http.get("/status", params={"payment_session_id": payment_session_id})
        assert answer.status_code in (200, 202), answer.text  # 202: an operation in flight
        return answer.json()  # type: ignore[no-any-return]


# --- Medusa's HTTP APIs -------------------------------------------------------------------------


class Storefront:
    """Medusa's store API, as a storefront calls it."""

    def __init__(self, medusa_url: str, publishable_key: str, seed: dict[str, Any]) -> None:
        self.seed = seed
        self.http = httpx.Client(
            base_url=medusa_url, headers={"x-publishable-api-key": publishable_key}, timeout=60
        )

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> dict[str, Any]:
        answer = self.http.request(method, path, **kwargs)
        assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()  # type: ignore[no-any-return]

    def cart(self, variant: str, email: str | None = None) -> dict[str, Any]:
        """A cart with one item of the seeded `variant`, an address and shipping, ready to pay."""
        email = email or f"shopper-{uuid.uuid4().hex[:8]}@example.com"
        address = {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "address_1": "Unter den Linden 1",
            "city": "Berlin",
            "postal_code": "10117",
            "country_code": "de",
            "phone": "+4930123456",
        }
        cart = self.call(
            "POST",
            "/store/carts",
            json={
                "region_id": self.seed["region_id"],
                "sales_channel_id": self.seed["sales_channel_id"],
                "email": email,
                "items": [{"variant_id": self.seed["variants"][variant], "quantity": 1}],
            },
        )["cart"]
        cart = self.call(
            "POST",
            f"/store/carts/{cart['id']}",
            json={"shipping_address": address, "billing_address": address},
        )["cart"]
        options = self.call("GET", "/store/shipping-options", params={"cart_id": cart["id"]})
        option = next(
            o for o in options["shipping_options"] if o["id"] == self.seed["shipping_option_id"]
        )
        shipped: dict[str, Any] = self.call(
            "POST", f"/store/carts/{cart['id']}/shipping-methods", json={"option_id": option["id"]}
        )["cart"]
        return shipped

    def payment_session(
        self, cart: dict[str, Any], collection_id: str | None = None
    ) -> dict[str, Any]:
        """A new NetValve payment session for the cart (Medusa deletes any earlier one)."""
        if collection_id is None:
            collection_id = self.call(
                "POST", "/store/payment-collections", json={"cart_id": cart["id"]}
            )["payment_collection"]["id"]
        collection = self.call(
            "POST",
            f"/store/payment-collections/{collection_id}/payment-sessions",
            json={"provider_id": PROVIDER_ID},
        )["payment_collection"]
        sessions = [s for s in collection["payment_sessions"] if s["provider_id"] == PROVIDER_ID]
        assert len(sessions) == 1, collection
        return {**sessions[0], "payment_collection_id": collection_id}

    def cart_sessions(self, cart_id: str) -> list[dict[str, Any]]:
        """The cart's payment sessions as the storefront reads them (status and data)."""
        cart = self.call(
            "GET",
            f"/store/carts/{cart_id}",
            params={"fields": "id,*payment_collection,*payment_collection.payment_sessions"},
        )["cart"]
        return list(cart["payment_collection"]["payment_sessions"])

    def get_cart(self, cart_id: str) -> dict[str, Any]:
        cart: dict[str, Any] = self.call("GET", f"/store/carts/{cart_id}")["cart"]
        return cart

    def complete(self, cart_id: str) -> httpx.Response:
        return self.http.post(f"/store/carts/{cart_id}/complete")


class Admin:
    """Medusa's admin API, as a merchant's back office calls it."""

    def __init__(self, medusa_url: str) -> None:
        token = httpx.post(
            f"{medusa_url}/auth/user/emailpass",
            json={"email": MEDUSA_ADMIN_EMAIL, "password": MEDUSA_ADMIN_PASSWORD},
            timeout=30,
        )
        assert token.status_code == 200, token.text
        self.http = httpx.Client(
            base_url=medusa_url,
            headers={"Authorization": f"Bearer {token.json()['token']}"},
            timeout=60,
        )

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> dict[str, Any]:
        answer = self.http.request(method, path, **kwargs)
        assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()  # type: ignore[no-any-return]

    ORDER_FIELDS = (
        "id,display_id,status,total,currency_code,payment_status,email,"
        "*payment_collections,*payment_collections.payments,"
        "*payment_collections.payments.captures,*payment_collections.payments.refunds"
    )

    def order(self, order_id: str) -> dict[str, Any]:
        path = f"/admin/orders/{order_id}"
        order: dict[str, Any] = self.call("GET", path, params={"fields": self.ORDER_FIELDS})[
            "order"
        ]
        return order

    def payments(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        return [p for c in order["payment_collections"] for p in c["payments"]]


@dataclass
class MedusaStack:
    medusa: MedusaProcess
    gateway: Gateway
    relay: WebhookRelay
    sandbox_url: str
    seed: dict[str, Any]
    medusa_db_dsn: str
    store: Storefront
    admin: Admin

    def close(self) -> None:
        self.store.http.close()
        self.admin.http.close()

    @property
    def hook_url(self) -> str:
        return f"{self.medusa.url}{HOOK_PATH}"

    def sandbox_transactions(self, prefix: str) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.sandbox_url}/_sandbox/transactions",
            params={"client_order_prefix": prefix},
            headers=sandbox_headers(),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body["transactions"] if isinstance(body, dict) else body  # type: ignore[no-any-return]

    def medusa_rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        """Rows of Medusa's own database (for what its HTTP APIs do not show, as order_cart)."""
        import asyncpg

        async def fetch() -> list[dict[str, Any]]:
            connection = await asyncpg.connect(self.medusa_db_dsn)
            try:
                return [dict(row) for row in await connection.fetch(query, *args)]
            finally:
                await connection.close()

        return asyncio.run(fetch())

    def order_of_cart(self, cart_id: str) -> str | None:
        rows = self.medusa_rows(
            "SELECT order_id FROM order_cart WHERE cart_id = $1 AND deleted_at IS NULL", cart_id
        )
        assert len(rows) <= 1, rows
        return rows[0]["order_id"] if rows else None


def tokenize(sandbox_url: str, payment_token: str, card: str) -> None:
    """What NetValve's hosted fields do in the shopper's browser: bind the card to the token."""
    answer = httpx.post(
        f"{sandbox_url}/hpf/tokenize",
        json={
            "paymentToken": payment_token,
            "cardNumber": card,
            "cardExpireMonth": "12",
            "cardExpireYear": "2030",
            "cardSecurityCode": "999",
            "cardHolderName": "Ada Lovelace",
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


EVIDENCE: list[tuple[str, dict[str, Any]]] = []


def evidence(flow: str, **facts: Any) -> None:
    """What a flow showed (order id, amounts, statuses), printed at the end of the run."""
    EVIDENCE.append((flow, facts))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not (TIMINGS or EVIDENCE):
        return
    terminalreporter.section("Medusa 2.21.2 end to end")
    for name, seconds in TIMINGS:
        terminalreporter.write_line(f"{name:<24} {seconds:7.1f} s")
    for flow, facts in EVIDENCE:
        terminalreporter.write_line(f"flow {flow}: {json.dumps(facts, default=str)}")


def wait_for(what: str, probe: Any, timeout: float = SETTLE_TIMEOUT, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(every)


# --- the fixture ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def medusa_store() -> Path:
    """integrations/medusa-test-store with its dependencies installed from its lockfile."""
    missing = _tool_missing()
    if missing:
        pytest.skip(
            f"MEDUSA END-TO-END SUITE NOT RUN: `{missing}` is not on PATH; install Node.js 20+ "
            "with npm to run the checkout against a real Medusa 2.21.2"
        )
    npm_ci(STORE_DIR, "store")
    return STORE_DIR


# Package scope: Medusa, the service and their workers stop once tests/medusa is done, rather
# than loading the machine under every suite that runs after it.
@pytest.fixture(scope="package")
def medusa_stack(
    medusa_store: Path, databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MedusaStack]:
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("medusa")

    tarball = pack_provider(workdir)
    install = ["npm", "install", "--no-save", str(tarball)]
    run_logged("store-install-provider", install, STORE_DIR, node_env())

    medusa_db = databases.create("medusa")
    service_db = databases.create("medusasvc")
    command.upgrade(alembic_config(service_db), "head")

    relay = WebhookRelay()
    relay_url = relay.server.start()
    medusa_port = free_port()
    relay.target = f"http://127.0.0.1:{medusa_port}"

    stack_env: dict[str, str] = {}
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(relay.server.stop)
        sandbox_url, _receiver = cleanup.enter_context(
            recording_sandbox(sandbox_pending_seconds=SANDBOX_PENDING_SECONDS)
        )
        env = replica_env(service_db, sandbox_url)
        env.update(
            MEDUSA_DATABASE_URL=medusa_db,
            MEDUSA_WEBHOOK_URL=f"{relay_url}{HOOK_PATH}",
            MEDUSA_WEBHOOK_SECRET=MEDUSA_WEBHOOK_SECRET,
            MEDUSA_NOTIFY_INTERVAL_SECONDS="0.2",
            MEDUSA_NOTIFY_RETRY_BASE_SECONDS="0.5",
            # The provider's key has the `medusa` scope: exactly what the provider calls.
            MEDUSA_API_KEYS=MEDUSA_GATEWAY_KEY,
        )
        gateway = Gateway(env, workdir)
        cleanup.callback(gateway.stop)
        cleanup.callback(gateway.http.close)

        seed_file = workdir / "seed.json"
        stack_env = node_env(
            DATABASE_URL=medusa_database_url(medusa_db),
            NETVALVE_GATEWAY_URL=gateway.url,
            NETVALVE_GATEWAY_API_KEY=MEDUSA_GATEWAY_KEY,
            MEDUSA_WEBHOOK_SECRET=MEDUSA_WEBHOOK_SECRET,
            JWT_SECRET=MEDUSA_JWT_SECRET,
            COOKIE_SECRET=MEDUSA_COOKIE_SECRET,
        )
        medusa_bin = str(STORE_DIR / "node_modules" / ".bin" / "medusa")
        run_logged("medusa-migrate", [medusa_bin, "db:migrate"], STORE_DIR, stack_env)
        run_logged(
            "medusa-seed",
            [medusa_bin, "exec", "./src/scripts/seed.ts"],
            STORE_DIR,
            {
                **stack_env,
                "SEED_OUTPUT": str(seed_file),
                "ADMIN_EMAIL": MEDUSA_ADMIN_EMAIL,
                "ADMIN_PASSWORD": MEDUSA_ADMIN_PASSWORD,
            },
        )
        seed = json.loads(seed_file.read_text())

        gateway.use("sale")
        boot = time.monotonic()
        medusa = MedusaProcess(stack_env, medusa_port)
        cleanup.callback(medusa.stop)
        medusa.wait_ready()
        TIMINGS.append(("medusa-start", time.monotonic() - boot))
        TIMINGS.append(("stack-total", time.monotonic() - started))

        from app.dev.embedded_pg import asyncpg_dsn

        stack = MedusaStack(
            medusa=medusa,
            gateway=gateway,
            relay=relay,
            sandbox_url=sandbox_url,
            seed=seed,
            medusa_db_dsn=asyncpg_dsn(medusa_db),
            store=Storefront(medusa.url, seed["publishable_key"], seed),
            admin=Admin(medusa.url),
        )
        cleanup.callback(stack.close)
        STACK.append(stack)
        yield stack
        STACK.clear()


@pytest.fixture(scope="package")
def medusa_timings(medusa_stack: MedusaStack) -> list[tuple[str, float]]:
    return TIMINGS


@pytest.fixture(autouse=True)
def _show_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """On a failure, the tails of Medusa's and the service's logs in the report (the files
    themselves go to the log audit and are deleted at the end of the run)."""
    yield
    report = getattr(request.node, "rep_call", None)
    stack = STACK[0] if STACK else None
    if stack is not None and report is not None and report.failed:
        report.sections.append(("Medusa log (tail)", stack.medusa.tail(80)))
        if stack.gateway.process is not None:
            report.sections.append(("service log (tail)", stack.gateway.process.tail(40)))


STACK: list[MedusaStack] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


@pytest.fixture
def sale(medusa_stack: MedusaStack) -> MedusaStack:
    """The stack with the service in sale mode (NetValve authorizes and captures at once)."""
    medusa_stack.gateway.use("sale")
    return medusa_stack


@pytest.fixture
def manual(medusa_stack: MedusaStack) -> MedusaStack:
    """The stack with the service in manual mode (NETVALVE_CAPTURE_MODE=manual)."""
    medusa_stack.gateway.use("manual")
    return medusa_stack
