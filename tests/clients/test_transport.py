"""The gateway client's sharded pools, against a real loopback server that counts connections."""

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.clients.transport import SHARD_CONNECTIONS, ShardedTransport, create_http_client
from app.sandbox.server import ThreadedServer
from tests.fixtures.gateway import client_settings

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


async def test_the_connection_limit_holds_across_shards(counting: tuple[Counting, str]) -> None:
    app, url = counting
    limit = SHARD_CONNECTIONS * 2 + 6  # three shards, of unequal sizes
    settings = client_settings(
        netvalve_max_connections=limit, netvalve_max_keepalive_connections=limit
    )
    app.expect(limit)
    async with create_http_client(settings) as http:
        await burst(http, url, limit * 2)

    assert app.peak == limit  # every connection used, never one more
    assert len(app.ports) == limit  # and each kept alive for the second half of the burst


async def test_kept_alive_connections_are_reused_in_every_shard(
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
    assert app.ports == first  # the second round found every connection kept, whatever its shard


async def test_limits_are_split_without_exceeding_the_totals() -> None:
    transport = ShardedTransport(httpx.Limits(max_connections=100, max_keepalive_connections=20))
    try:
        pools = [shard._pool for shard in transport.shards]
        assert len(pools) == 4
        assert sum(pool._max_connections for pool in pools) == 100
        assert sum(pool._max_keepalive_connections for pool in pools) == 20
    finally:
        await transport.aclose()
