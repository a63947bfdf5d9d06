"""The HTTP client every gateway call shares, its connections in several small pools.

httpcore's pool walks every connection it holds each time a request arrives or a response is
released, and for each idle connection it counts the whole pool again: the cost of a request grows
with the square of the pool's size. At the pool sizes a slow gateway calls for (one connection per
payment in flight, hundreds in a burst), that walk cost more CPU than the rest of the payment
(see docs/benchmarks.md). Shards of at most SHARD_CONNECTIONS keep each walk short.

Requests go to the shards in turn. Each shard has an equal part of the limits, so the totals stay
within `max_connections` and `max_keepalive_connections`; a request waits only for a connection
of its own shard, which, with requests spread evenly, is what one pool would do too.
"""

import itertools
import math

import httpx

from app import VERSION
from app.core.config import Settings

SHARD_CONNECTIONS = 32


def _split(total: int, parts: int) -> list[int]:
    """`total` in `parts` near-equal whole shares that add up to it."""
    share, extra = divmod(total, parts)
    return [share + (1 if index < extra else 0) for index in range(parts)]


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        connections = limits.max_connections
        if connections is None:
            raise ValueError("the gateway client needs a bounded max_connections")
        keepalive = limits.max_keepalive_connections
        count = math.ceil(connections / SHARD_CONNECTIONS)
        keepalives = _split(keepalive if keepalive is not None else connections, count)
        self.shards = [
            httpx.AsyncHTTPTransport(
                limits=httpx.Limits(
                    max_connections=size,
                    max_keepalive_connections=kept,
                    keepalive_expiry=limits.keepalive_expiry,
                )
            )
            for size, kept in zip(_split(connections, count), keepalives, strict=True)
        ]
        self._next = itertools.cycle(self.shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one client every gateway call shares, so connections are pooled and reused."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=settings.netvalve_connect_timeout,
            read=settings.netvalve_read_timeout,
            write=settings.netvalve_connect_timeout,
            pool=settings.netvalve_connect_timeout,
        ),
        transport=ShardedTransport(
            httpx.Limits(
                max_connections=settings.netvalve_max_connections,
                max_keepalive_connections=settings.netvalve_max_keepalive_connections,
            )
        ),
        headers={"User-Agent": f"netvalve-gateway/{VERSION}"},
        follow_redirects=False,
    )
