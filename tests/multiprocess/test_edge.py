"""The service's edge under the exact commands the Dockerfile and both compose files run: huge
and slow requests, forged X-Forwarded-For, and /metrics across uvicorn workers."""

import asyncio
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from alembic import command
from app import METRICS_ROOT
from tests.conftest import Databases, alembic_config, create_medusa_tables
from tests.fixtures.api import ADMIN_KEY, STOREFRONT_KEY
from tests.fixtures.webhooks import WEBHOOK_HEADER, WEBHOOK_SECRET
from tests.multiprocess.conftest import ServiceProcess, replica_env
from tests.test_deploy_files import command_words, compose, dockerfile_instructions

MiB = 1024 * 1024
UNUSED_GATEWAY = "http://127.0.0.1:9"  # never called: no test here reaches NetValve
READ_TIMEOUT = 1.5


def entry_points() -> dict[str, list[str]]:
    """Every command that starts the server, as the deployment files write it."""
    return {
        "Dockerfile": yaml.safe_load(dict(dockerfile_instructions())["CMD"]),
        "docker-compose.prod.yml": command_words(
            compose("docker-compose.prod.yml")["services"]["app"]["command"]
        ),
        # `make run` and the dev compose file: the launcher's own uvicorn call.
        "docker-compose.yml": command_words(
            compose("docker-compose.yml")["services"]["app"]["command"]
        ),
    }


def edge_env(database_url: str, workdir: Path, **env: str) -> dict[str, str]:
    variables = replica_env(database_url, UNUSED_GATEWAY)
    variables.update(
        WEBHOOK_WORKER_ENABLED="false",
        RECONCILE_ENABLED="false",
        REQUEST_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
        TMPDIR=str(workdir),  # where workers share their metrics
        **env,
    )
    return variables


@pytest.fixture(scope="module")
def edge_database(databases: Databases) -> str:
    url = databases.create("edge")
    asyncio.run(create_medusa_tables(url))
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture
def start(edge_database: str, tmp_path: Path) -> Iterator[Callable[[str], ServiceProcess]]:
    processes: list[ServiceProcess] = []

    def started(entry_point: str) -> ServiceProcess:
        variables = edge_env(edge_database, tmp_path)
        process = ServiceProcess(entry_point, variables, tmp_path, entry_points()[entry_point])
        processes.append(process)
        process.wait_ready()
        return process

    yield started
    for process in processes:
        process.stop()


@pytest.fixture(scope="module", params=list(entry_points()))
def entry_point(
    request: pytest.FixtureRequest, edge_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One server per entry point for the checks below: a webhook allow-list of 10.0.0.0/8, no
    TRUSTED_PROXIES, and a rate limit of one request a minute."""
    workdir = tmp_path_factory.mktemp("edge")
    variables = edge_env(
        edge_database,
        workdir,
        NETVALVE_WEBHOOK_ALLOWED_IPS="10.0.0.0/8",
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_PER_MINUTE="1",
        RATE_LIMIT_BURST="1",
    )
    process = ServiceProcess(request.param, variables, workdir, entry_points()[request.param])
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def post_raw(port: int, path: str, headers: dict[str, str], size: int, chunked: bool) -> int:
    """POSTs a body of `size` bytes, 64 KiB at a time, and stops sending as soon as the server
    answers; the answer's status (0 if the connection was cut without one)."""
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    piece = b"x" * 65536
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        try:
            connection.sendall(head.encode())
            for _ in range(size // len(piece)):
                if select.select([connection], [], [], 0)[0]:
                    break  # answered early
                connection.sendall(frame)
            else:
                connection.sendall(b"0\r\n\r\n" if chunked else b"")
            answer = connection.recv(4096)
        except (BrokenPipeError, ConnectionResetError):
            try:
                answer = connection.recv(4096)
            except OSError:
                return 0
    match = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    return int(match.group(1)) if match else 0


def peak_rss(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, flags=re.MULTILINE)
    assert found
    return int(found.group(1)) * 1024


def seconds_until_closed(port: int, request: bytes, trickle: bytes, limit: float) -> float:
    """Sends `request`, then `trickle` a byte every 0.25 s; how long until the server closed
    the connection (`limit` if it never did)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
        connection.sendall(request)
        for byte in trickle * 100:
            if time.monotonic() - started > limit:
                return limit
            try:
                if select.select([connection], [], [], 0.25)[0] and not connection.recv(4096):
                    return time.monotonic() - started
                connection.sendall(bytes([byte]))
            except OSError:
                return time.monotonic() - started
    return limit


class TestHugeBodies:
    def test_peak_memory_stays_flat_under_200_and_60_mb_bodies(self, start):
        service = start("Dockerfile")
        payment = "/api/v1/netvalve/payment"
        key = {"Authorization": f"Bearer {STOREFRONT_KEY}"}
        for _ in range(3):  # warm every path first: imports and caches are not the body
            assert post_raw(service.port, payment, {}, 1024, chunked=False) == 401
            assert post_raw(service.port, payment, key, 64 * 1024, chunked=True) == 413
            assert post_raw(service.port, payment, key, 64 * 1024, chunked=False) == 413
        before = peak_rss(service.process.pid)

        assert post_raw(service.port, payment, {}, 200 * MiB, chunked=False) == 401
        assert post_raw(service.port, payment, {}, 200 * MiB, chunked=True) == 401
        assert post_raw(service.port, payment, key, 60 * MiB, chunked=False) == 413
        assert post_raw(service.port, payment, key, 60 * MiB, chunked=True) == 413

        grown = peak_rss(service.process.pid) - before
        assert grown < 40 * MiB, f"peak RSS grew by {grown / MiB:.1f} MiB"


class TestEveryEntryPoint:
    def test_trickled_headers_and_bodies_are_cut_off(self, entry_point: ServiceProcess):
        service = entry_point
        headers = b"GET /health HTTP/1.1\r\nHost: test\r\n"
        assert seconds_until_closed(service.port, headers, b"X-Slow: a\r\n", 8) < 5
        body = (
            b"POST /api/v1/netvalve/payment HTTP/1.1\r\nHost: test\r\n"
            + f"Authorization: Bearer {STOREFRONT_KEY}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n{"
        )
        assert seconds_until_closed(service.port, body, b" ", 8) < 5

    def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(self, entry_point: ServiceProcess):
        service = entry_point
        with httpx.Client(base_url=service.url, timeout=10) as http:
            webhook = http.post(
                "/api/v1/netvalve/webhook",
                json={"eventName": "SALE", "data": {}},
                headers={WEBHOOK_HEADER: WEBHOOK_SECRET, "X-Forwarded-For": "10.1.1.1"},
            )
            assert webhook.status_code == 403, webhook.text
            assert webhook.json()["error"] == "WebhookSourceForbidden"

            statuses = [
                http.get(
                    "/api/v1/netvalve/status",
                    params={"payment_id": "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"},
                    headers={
                        "Authorization": f"Bearer {STOREFRONT_KEY}",
                        "X-Forwarded-For": f"10.9.9.{hop}",
                    },
                ).status_code
                for hop in range(3)
            ]
            assert statuses[0] != 429
            assert statuses[1:] == [429, 429]  # one bucket: the header bought nothing


class TestWorkers:
    def test_metrics_add_up_every_worker(self, start, tmp_path: Path):
        service = start("docker-compose.prod.yml")
        requests = 120

        def health(_: int) -> int:
            # A connection each, so the kernel hands requests to both workers.
            return httpx.get(f"{service.url}/health", timeout=10).status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            assert set(pool.map(health, range(requests))) == {200}

        series = re.compile(
            r'^netvalve_gateway_http_request_duration_seconds_count\{method="GET",'
            r'route="/health",status="200"\} (\S+)$',
            flags=re.MULTILINE,
        )
        counted = -1.0
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        for _ in range(20):  # the last request is recorded just after its answer is sent
            scrapes = [httpx.get(f"{service.url}/metrics", headers=admin) for _ in range(6)]
            counted = min(float(series.findall(scrape.text)[0]) for scrape in scrapes)
            if counted == requests:
                break
            time.sleep(0.1)
        assert counted == requests

        files = list((tmp_path / METRICS_ROOT).glob("*/histogram_*.db"))
        workers = {re.sub(r"\D", "", path.name) for path in files}
        assert len(workers) == 2, files  # both workers served, and one view added them up
        for scrape in scrapes:
            # A gauge read from the database is the value, once, whichever worker read it.
            assert re.findall(r"^netvalve_gateway_metrics_database_up.*$", scrape.text, re.M) == [
                "netvalve_gateway_metrics_database_up 1.0"
            ]
