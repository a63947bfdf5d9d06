"""Fault injection: per-path rules that make the sandbox misbehave the way networks do.

Kinds:
- `latency`: wait `latency_ms`, then answer normally.
- `hang`: wait `hang_seconds` (default an hour), past any client timeout. With `when=after` the
  request is processed first.
- `http_error`: answer `status` (default 502) with an HTML body. With `when=after` the request is
  processed first, so the transaction exists although the caller saw an error.
- `reset`: process the request, send the status line, then drop the connection before the body.
- `malformed`: process the request, then answer 200 with a truncated JSON body.

`times` limits how often a rule fires (None: until cleared).
"""

import asyncio
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["latency", "hang", "http_error", "reset", "malformed"]


class FaultRule(BaseModel):
    path: str = Field(description="Exact request path, e.g. /sale.")
    kind: FaultKind
    latency_ms: float = Field(default=0, ge=0, le=600_000)
    hang_seconds: float = Field(default=3600, ge=0, le=86_400)
    status: int = Field(default=502, ge=500, le=599)
    when: Literal["before", "after"] = "before"
    times: int | None = Field(default=None, ge=1)


class ConnectionDropped(Exception):
    """Raised after the status line is sent, so the server drops the connection (a reset)."""


@dataclass
class FaultRegistry:
    rules: list[FaultRule]
    latency_ms: float = 0.0

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
        processed = rule.when == "after" or rule.kind in {"reset", "malformed"}
        messages: list[Message] = []
        if processed:
            await self.app(scope, receive, _collect(messages))
        await self._misbehave(rule, messages, send)

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
