"""The HTTP client every gateway call shares: httpx's API over aiohttp's connection pool.

httpcore's pool walks every connection it holds each time a request arrives or a response is
released, which made the transport cost more CPU per payment than the rest of the service at the
pool sizes a slow gateway calls for. aiohttp's pool does the same work in a fraction of the time
(docs/benchmarks.md), so `AiohttpTransport` hands each request to it and gives back an httpx
response: callers, respx and the retry-safety rules keep speaking httpx.

The transport is written here rather than taken from `httpx_aiohttp`, whose exception map turns
every `aiohttp.ClientConnectionError` into `httpx.ConnectTimeout`: a connection reset or a server
that hangs up after reading a sale would read as "never sent", which makes a resend look safe.
Here only the two failures aiohttp raises before any byte of the request is written (the pool
wait or connect timing out, the connect itself failing) become connect errors; every other
failure may come after the request left, and becomes a read or protocol error.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import httpx
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
from yarl import URL

from app import VERSION
from app.core.config import Settings

__all__ = ["AiohttpTransport", "create_http_client"]


class _KeepaliveCappedConnector(aiohttp.TCPConnector):
    """aiohttp keeps every released connection until its keep-alive expires; httpx's
    `max_keepalive_connections` caps how many stay idle, so one released beyond it is closed."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(
            limit=limits.max_connections or 0,
            keepalive_timeout=limits.keepalive_expiry,
            ssl=httpx.create_ssl_context(),
        )
        self._max_idle = limits.max_keepalive_connections

    def _release(
        self,
        key: ConnectionKey,
        protocol: ResponseHandler,
        *,
        should_close: bool = False,
    ) -> None:
        if self._max_idle is not None and self._idle_count() >= self._max_idle:
            should_close = True
        super()._release(key, protocol, should_close=should_close)

    def _idle_count(self) -> int:
        return sum(len(idle) for idle in self._conns.values())


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        # aiohttp's connect phase is the pool wait and the connect: nothing was written yet.
        raise httpx.ConnectTimeout(str(exc)) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc)) from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "timed out") from exc
    except (
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientPayloadError,
        aiohttp.ClientResponseError,  # an answer that is not HTTP
    ) as exc:
        raise httpx.RemoteProtocolError(str(exc)) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__) from exc


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session, opened on first use, bounded by `limits`; responses are read whole
    (the gateway's answers are small JSON), so the connection goes back to the pool at once."""

    def __init__(self, limits: httpx.Limits) -> None:
        if limits.max_connections is None:
            raise ValueError("the gateway client needs a bounded max_connections")
        self.limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=_KeepaliveCappedConnector(self.limits),
            # httpx owns headers, cookies, decompression and redirects: aiohttp adds none.
            skip_auto_headers=("Accept", "Accept-Encoding", "Content-Type", "User-Agent"),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session = self._session or self._open()
        with _httpx_errors():
            async with session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=await request.aread() or None,
                allow_redirects=False,
                timeout=_aiohttp_timeout(request),
            ) as answer:
                content = await answer.read()
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (answer.reason or "").encode()}
        return httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            stream=httpx.ByteStream(content),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _aiohttp_timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's per-request timeouts in aiohttp's terms. aiohttp's `connect` bounds the pool wait
    and the connect together. It has no write timeout: its read timeout starts once the body is
    written, and a body this small goes to the socket's buffer without waiting (asyncio only
    makes a writer wait above 64 KiB buffered)."""
    timeout = request.extensions.get("timeout", {})
    pool, connect = timeout.get("pool"), timeout.get("connect")
    return aiohttp.ClientTimeout(
        total=None,
        connect=None if pool is None or connect is None else pool + connect,
        sock_connect=connect,
        sock_read=timeout.get("read"),
    )


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one client every gateway call shares, so connections are pooled and reused."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=settings.netvalve_connect_timeout,
            read=settings.netvalve_read_timeout,
            write=settings.netvalve_connect_timeout,
            pool=settings.netvalve_connect_timeout,
        ),
        transport=AiohttpTransport(
            httpx.Limits(
                max_connections=settings.netvalve_max_connections,
                max_keepalive_connections=settings.netvalve_max_keepalive_connections,
            )
        ),
        headers={"User-Agent": f"netvalve-gateway/{VERSION}"},
        follow_redirects=False,
    )
