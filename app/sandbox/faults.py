"""Fault injection: per-path rules that make the sandbox misbehave the way networks do.

Kinds:
- `latency`: wait `latency_ms`, then answer normally.
- `hang`: wait `hang_seconds` (default an hour), past any client timeout. With `when=after` the
  request is processed first.
- `http_error`: answer `status` (default 502) with an HTML body. With `when=after` the request is
  processed first, so the transaction exists although the caller saw an error.
- `reset`: process the request, send the status line, then drop the connection before the body.
- `malformed`: process the request, then answer 200 with a truncated JSON body.
- `hold`: keep the request, unprocessed, until released through `POST /_sandbox/faults/release`
  (or `delay_seconds`), then process and answer it: a request that is still in flight at
  NetValve, for as long as a test needs.
- `late`: answer at once without processing (`status`, or a hang of `hang_seconds` first with
  `answer=hang`), then process the request `delay_seconds` later, or when released through
  `POST /_sandbox/faults/release`: a slow acquirer that finishes after the caller gave up.

`times` limits how often a rule fires (None: until cleared).
"""

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["latency", "hang", "http_error", "reset", "malformed", "late", "hold"]


class FaultRule(BaseModel):
    path: str = Field(description="Exact request path, e.g. /sale.")
    kind: FaultKind
    latency_ms: float = Field(default=0, ge=0, le=600_000)
    hang_seconds: float = Field(default=3600, ge=0, le=86_400)
    status: int = Field(default=502, ge=500, le=599)
    when: Literal["before", "after"] = "before"
    times: int | None = Field(default=None, ge=1)
    delay_seconds: float | None = Field(
        default=None, ge=0, le=3600, description="`late`: process after this; None: on release."
    )
    answer: Literal["error", "hang"] = Field(
        default="error", description="`late`: answer `status` at once, or hang first."
    )


class ConnectionDropped(Exception):
    """Raised after the status line is sent, so the server drops the connection (a reset)."""


@dataclass
class _Held:
    path: str
    kind: str
    release: asyncio.Event
    task: "asyncio.Task[None] | None" = None


@dataclass
class FaultRegistry:
    rules: list[FaultRule]
    latency_ms: float = 0.0
    held: list[_Held] = field(default_factory=list)

    async def release(self, path: str | None = None, kind: str | None = None) -> int:
        """Process the requests held by `hold` and `late` faults now (those for `path`, of
        `kind`, if given); for `late`, returns once they are processed."""
        chosen = [
            held for held in self.held if path in (None, held.path) and kind in (None, held.kind)
        ]
        for held in chosen:
            held.release.set()
        await asyncio.gather(*(held.task for held in chosen if held.task is not None))
        return len(chosen)

    def drop_held(self) -> None:
        for held in self.held:
            if held.task is not None:
                held.task.cancel()
        self.held.clear()

    def take(self, path: str) -> FaultRule | None:
        for rule in self.rules:
            if rule.path == path:
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self.rules.remove(rule)
                return rule
        return None


class FaultMiddleware:
    def __init__(self, app: ASGIApp, registry: FaultRegistry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        if self.registry.latency_ms:
            await asyncio.sleep(self.registry.latency_ms / 1000)
        rule = self.registry.take(scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.kind == "latency":
            await asyncio.sleep(rule.latency_ms / 1000)
            await self.app(scope, receive, send)
            return
        if rule.kind == "hold":
            held = _Held(scope["path"], "hold", asyncio.Event())
            self.registry.held.append(held)
            try:
                await _wait(held.release, rule.delay_seconds)
            finally:
                self.registry.held.remove(held)
            await self.app(scope, receive, send)
            return
        if rule.kind == "late":
            await self._hold(rule, scope, await _read_body(receive))
            if rule.answer == "hang":
                await asyncio.sleep(rule.hang_seconds)
                await _send_plain(send, 504, b"")
            else:
                await _send_plain(send, rule.status, b"<html><body>Gateway Timeout</body></html>")
            return
        processed = rule.when == "after" or rule.kind in {"reset", "malformed"}
        messages: list[Message] = []
        if processed:
            await self.app(scope, receive, _collect(messages))
        await self._misbehave(rule, messages, send)

    async def _hold(self, rule: FaultRule, scope: Scope, body: bytes) -> None:
        held = _Held(scope["path"], "late", asyncio.Event())

        async def process_later() -> None:
            await _wait(held.release, rule.delay_seconds)
            sent = False

            async def replay() -> Message:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(dict(scope), replay, _collect([]))
            self.registry.held.remove(held)

        self.registry.held.append(held)
        held.task = asyncio.create_task(process_later())

    async def _misbehave(self, rule: FaultRule, messages: list[Message], send: Send) -> None:
        if rule.kind == "hang":
            await asyncio.sleep(rule.hang_seconds)
            await _send_plain(send, 504, b"")
        elif rule.kind == "http_error":
            await _send_plain(send, rule.status, b"<html><body>Bad Gateway</body></html>")
        elif rule.kind == "malformed":
            await _send_plain(send, 200, b'{"traceID": "', content_type=b"application/json")
        else:  # reset
            start = next(
                message for message in messages if message["type"] == "http.response.start"
            )
            await send(start)
            raise ConnectionDropped


async def _wait(release: asyncio.Event, seconds: float | None) -> None:
    if seconds is None:
        await release.wait()
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(release.wait(), seconds)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _collect(messages: list[Message]) -> Send:
    async def send(message: Message) -> None:
        messages.append(message)

    return send


async def _send_plain(
    send: Send, status: int, body: bytes, content_type: bytes = b"text/html"
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
