"""The CORS layer adds to every answer exactly what Starlette's own middleware adds; only a
refused preflight differs (its error shape is tested in tests/api)."""

from typing import Any

import pytest
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send

from app.core.cors import ErrorShapeCORSMiddleware

pytestmark = pytest.mark.asyncio

OPTIONS: dict[str, Any] = {
    "allow_origins": ["https://shop.example.com"],
    "allow_methods": ["GET", "POST"],
    "allow_headers": ["Authorization", "Content-Type"],
    "expose_headers": ["X-Request-ID"],
}


def inner(headers: list[tuple[bytes, bytes]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def answer(middleware: Any, method: str, headers: dict[str, str]) -> list[Message]:
    scope = {
        "type": "http",
        "method": method,
        "path": "/health",
        "headers": [(name.encode(), value.encode()) for name, value in headers.items()],
        "state": {},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    return sent


def header_set(messages: list[Message]) -> set[tuple[bytes, bytes]]:
    return set(messages[0]["headers"])


REQUESTS = [
    ("GET", {}),
    ("POST", {"content-type": "application/json"}),
    ("OPTIONS", {}),
    ("GET", {"origin": "https://shop.example.com"}),
    ("GET", {"origin": "https://evil.example"}),
    ("OPTIONS", {"origin": "https://shop.example.com", "access-control-request-method": "GET"}),
]


class TestSameAsStarlette:
    @pytest.mark.parametrize(("method", "headers"), REQUESTS)
    @pytest.mark.parametrize(
        "app_headers",
        [[], [(b"content-type", b"application/json")], [(b"vary", b"Accept-Encoding")]],
    )
    async def test_headers_of_an_answer(self, method, headers, app_headers):
        ours = ErrorShapeCORSMiddleware(inner(app_headers), **OPTIONS)
        starlette = CORSMiddleware(inner(app_headers), **OPTIONS)

        mine = await answer(ours, method, headers)
        theirs = await answer(starlette, method, headers)

        assert header_set(mine) == header_set(theirs)
        assert [m["status"] for m in mine[:1]] == [m["status"] for m in theirs[:1]]
        assert len(mine[0]["headers"]) == len(theirs[0]["headers"])

    async def test_an_answer_without_origin_varies_on_it_once(self):
        ours = ErrorShapeCORSMiddleware(inner([(b"vary", b"Accept-Encoding")]), **OPTIONS)

        sent = await answer(ours, "POST", {})

        assert [v for n, v in sent[0]["headers"] if n == b"vary"] == [b"Accept-Encoding, Origin"]
