"""The webhook-intake baseline: a raw ASGI app that stores the body with one asyncpg statement.

It is what the service's intake costs at the least: the same uvicorn, the same database, one
INSERT per delivery, no framework, no parsing, no auth. Served by the benchmark as
`uvicorn bench.bare_webhook:app`, configured by BENCH_BARE_DSN and BENCH_BARE_POOL_SIZE.
"""

import os
from typing import Any

import asyncpg
from starlette.types import Receive, Scope, Send

TABLE = "bench_raw_webhooks"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    body bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = f"INSERT INTO {TABLE} (body) VALUES ($1)"  # noqa: S608 (a module constant)


class _State:
    """One pool per process, as the service has; opened by the lifespan."""

    pool: "asyncpg.Pool[Any] | None" = None


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            size = int(os.environ.get("BENCH_BARE_POOL_SIZE", "20"))
            _State.pool = await asyncpg.create_pool(
                os.environ["BENCH_BARE_DSN"], min_size=1, max_size=size
            )
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _State.pool is not None:
                await _State.pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET" and scope["path"] == "/health":
        await _respond(send, 200, b'{"status":"ok"}')
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    pool = _State.pool
    assert pool is not None, "lifespan startup did not run"  # noqa: S101
    await pool.execute(INSERT, b"".join(chunks))
    await _respond(send, 200, b'{"status":"stored"}')
