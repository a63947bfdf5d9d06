"""uvicorn's HTTP protocol with a deadline for reading each request.

uvicorn bounds only the idle time between requests (`--timeout-keep-alive`); a client that
trickles its headers or body a few bytes a second holds a connection, and the buffers behind
it, for as long as it likes. Every entry point selects this class with
`--http app.core.server:BoundedHttpToolsProtocol` (`http=` in `make run`'s uvicorn call).
"""

import asyncio

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.config import get_settings

log = structlog.get_logger(__name__)

HTTP_PROTOCOL = "app.core.server:BoundedHttpToolsProtocol"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Closes a connection whose request (headers and body) is not fully received within
    REQUEST_READ_TIMEOUT_SECONDS of its first byte, or of the connection opening."""

    _read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_deadline is None:
            self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _arm(self) -> None:
        seconds = get_settings().request_read_timeout_seconds
        self._read_deadline = self.loop.call_later(seconds, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():
            log.warning("http.request_read_timeout", client=self.client and self.client[0])
            self.transport.close()
