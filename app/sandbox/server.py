"""Run the sandbox on a real loopback socket inside this process, in a thread of its own.

A real socket matters: client timeouts, connection resets and refused connections only behave
as they do against NetValve when bytes cross a network stack.
"""

import asyncio
import logging
import threading
import time

import uvicorn
from starlette.types import ASGIApp

from app.sandbox.app import SandboxSettings, create_sandbox_app
from app.sandbox.faults import ConnectionDropped


class _DropInjectedResets(logging.Filter):
    """uvicorn logs every dropped connection as an error; injected ones are expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


class ThreadedServer:
    """Any ASGI app served by uvicorn on a loopback socket, in a daemon thread."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="netvalve-sandbox", daemon=True)
        self._host = host

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self, timeout: float = 15.0) -> str:
        """Start serving; returns the base URL (with the real port when `port` was 0)."""
        logging.getLogger("uvicorn.error").addFilter(_DropInjectedResets())
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the NetValve sandbox did not start")
            time.sleep(0.02)
        return self.url

    @property
    def url(self) -> str:
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self._host}:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class SandboxServer(ThreadedServer):
    def __init__(self, settings: SandboxSettings, *, host: str = "127.0.0.1", port: int = 0):
        super().__init__(create_sandbox_app(settings), host=host, port=port)
