"""The gateway client's transport against real loopback servers: its connection limits, counted
at a server, and which failures read as "never sent" (safe to resend) and which as "may have
been sent"."""

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.clients.netvalve import (
    NetvalveClient,
    NetvalveResult,
    PaymentRequest,
    Unavailable,
    UnknownOutcome,
)
from app.clients.transport import create_http_client
from app.sandbox.server import ThreadedServer
from tests.fixtures.gateway import client_settings, closed_port

pytestmark = pytest.mark.asyncio

HOLD_SECONDS = 0.3
GATHER_SECONDS = 5.0


class Counting:
    """An ASGI app that records what it saw: the peak of requests in flight at once, and the
    client ports (one per TCP connection). Each request is held until `expected` are in flight
    (or a few seconds have passed), then a moment more, so that a slow machine opening its
    connections one by one cannot lower the peak, and a client over its limit still shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.ports: set[int] = set()
        self.expected = 1
        self._gathered: asyncio.Event | None = None

    def expect(self, count: int) -> None:
        """Before a burst: hold its requests until `count` are in flight."""
        self.expected, self._gathered = count, None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        gathered = self._gathered = self._gathered or asyncio.Event()  # the server's loop
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.ports.add(scope["client"][1])
            if self.in_flight >= self.expected:
                gathered.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gathered.wait(), GATHER_SECONDS)
        await asyncio.sleep(HOLD_SECONDS)
        with self._lock:
            self.in_flight -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def counting() -> Iterator[tuple[Counting, str]]:
    app = Counting()
    server = ThreadedServer(app)  # type: ignore[arg-type]
    url = server.start()
    yield app, url
    server.stop()


async def burst(http: httpx.AsyncClient, url: str, count: int) -> None:
    answers = await asyncio.gather(*(http.get(f"{url}/x") for _ in range(count)))
    assert [a.status_code for a in answers] == [200] * count


async def test_the_connection_limit_holds(counting: tuple[Counting, str]) -> None:
    app, url = counting
    limit = 70
    settings = client_settings(
        netvalve_max_connections=limit, netvalve_max_keepalive_connections=limit
    )
    app.expect(limit)
    async with create_http_client(settings) as http:
        await burst(http, url, limit * 2)

    assert app.peak == limit  # every connection used, never one more
    assert len(app.ports) == limit  # and each kept alive for the second half of the burst


async def test_kept_alive_connections_are_reused(
    counting: tuple[Counting, str],
) -> None:
    app, url = counting
    settings = client_settings(netvalve_max_connections=100, netvalve_max_keepalive_connections=20)
    app.expect(8)
    async with create_http_client(settings) as http:
        await burst(http, url, 8)
        first = set(app.ports)
        app.expect(8)
        await burst(http, url, 8)

    assert len(first) == 8
    assert app.ports == first  # the second round found every connection kept


async def test_idle_connections_beyond_the_keepalive_limit_are_closed(
    counting: tuple[Counting, str],
) -> None:
    app, url = counting
    settings = client_settings(netvalve_max_connections=10, netvalve_max_keepalive_connections=4)
    app.expect(10)
    async with create_http_client(settings) as http:
        await burst(http, url, 10)
        app.expect(10)
        await burst(http, url, 10)

    assert len(app.ports) == 10 + 6  # four were kept for the second round, six opened anew


class RawServer:
    """A loopback HTTP/1.1 server that reads each request whole, then misbehaves as told: the
    request has left the client by then, so whatever follows must not read as "never sent"."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.requests = 0
        self.closed_by_client = False
        self._server: asyncio.Server | None = None
        self._released = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._released.set()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await self._answer(reader, writer)
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        length = next((int(line[15:]) for line in lines if line.startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        self.requests += 1
        if self.behaviour == "answer_then_wait_for_eof":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                self.closed_by_client = await asyncio.wait_for(reader.read(), 2) == b""
            return
        await self._misbehave(writer)

    async def _misbehave(self, writer: asyncio.StreamWriter) -> None:
        if self.behaviour == "hang":
            await self._released.wait()
        elif self.behaviour == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif self.behaviour == "status_line_only":
            writer.write(b"HTTP/1.1 200 OK\r\n")
        elif self.behaviour == "truncated_body":
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"responseCode"')
        elif self.behaviour == "garbage":
            writer.write(b"SMTP ready\r\n\r\n")
        with contextlib.suppress(OSError):
            await writer.drain()


def payment_request() -> PaymentRequest:
    return PaymentRequest(
        amount=Decimal("44.00"), currency="EUR", client_order_id="pay_1", payment_token="t"
    )


async def sale(url: str, **overrides: object) -> NetvalveResult:
    settings = client_settings(netvalve_base_url=url, **overrides)
    async with create_http_client(settings) as http:
        return await NetvalveClient(http, settings).sale(payment_request())


class TestRetrySafety:
    @pytest.mark.parametrize(
        "behaviour", ["closed", "reset", "status_line_only", "truncated_body", "garbage"]
    )
    async def test_a_connection_lost_after_sending_is_an_unknown_outcome(
        self, behaviour: str
    ) -> None:
        server = RawServer(behaviour)
        async with server as url:
            result = await sale(url)

        assert server.requests == 1
        assert isinstance(result, UnknownOutcome), result
        assert (result.reason, result.retry_safe) == ("connection_lost", False)

    async def test_no_answer_in_time_after_sending_is_an_unknown_outcome(self) -> None:
        async with RawServer("hang") as url:
            result = await sale(url, netvalve_read_timeout=0.3)

        assert isinstance(result, UnknownOutcome), result
        assert (result.reason, result.retry_safe) == ("timeout", False)

    async def test_a_refused_connection_is_unavailable(self) -> None:
        result = await sale(f"http://127.0.0.1:{closed_port()}")

        assert isinstance(result, Unavailable), result
        assert (result.reason, result.retry_safe) == ("connection_refused", True)

    async def test_waiting_too_long_for_a_pooled_connection_sends_nothing(self) -> None:
        server = RawServer("hang")
        async with server as url:
            settings = client_settings(
                netvalve_base_url=url, netvalve_max_connections=1, netvalve_connect_timeout=0.2
            )
            async with create_http_client(settings) as http:
                client = NetvalveClient(http, settings)
                holding = asyncio.create_task(client.sale(payment_request()))
                await asyncio.sleep(0.1)
                waited = await client.sale(payment_request())
                holding.cancel()

        assert isinstance(waited, Unavailable), waited
        # aiohttp bounds the pool wait and the connect as one phase, so its reason is the connect's.
        assert (waited.reason, waited.retry_safe) == ("connect_timeout", True)
        assert server.requests == 1


async def test_closing_the_client_closes_its_pooled_connections() -> None:
    server = RawServer("answer_then_wait_for_eof")
    async with server as url:
        http = create_http_client(client_settings())
        assert (await http.get(f"{url}/x")).status_code == 200
        await http.aclose()  # what the lifespan does at shutdown
        await asyncio.sleep(0.2)

        assert server.closed_by_client  # the kept-alive connection was closed, not left open
