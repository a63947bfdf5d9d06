"""The request guard's routes table (its refusals are tested end to end in
tests/security/test_request_bounds.py)."""

from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.api import guard
from app.api.guard import RequestGuardMiddleware, RouteGuard
from app.core.config import Settings
from tests.fixtures.settings import make_settings

pytestmark = pytest.mark.asyncio
DATABASE_URL = "postgresql+asyncpg://user:password@localhost/unused"


async def receive() -> Message:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def send(message: Message) -> None:
    pass


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    pass


def post(path: str) -> Scope:
    headers = [(b"content-length", b"2"), (b"content-type", b"application/json")]
    return {"type": "http", "method": "POST", "path": path, "root_path": "", "headers": headers}


class TestRouteGuards:
    async def test_derived_once_at_start_up_not_on_a_request(self, monkeypatch):
        derived: list[Any] = []

        def route_guards(routes: Any, settings: Settings) -> list[RouteGuard]:
            derived.append(routes)
            return []

        monkeypatch.setattr(guard, "route_guards", route_guards)
        middleware = RequestGuardMiddleware(inner, routes=[], settings=make_settings(DATABASE_URL))

        await middleware({"type": "lifespan"}, receive, send)
        assert len(derived) == 1
        await middleware(post("/api/v1/netvalve/payment"), receive, send)
        await middleware(post("/api/v1/netvalve/webhook"), receive, send)
        assert len(derived) == 1

    async def test_derived_on_the_first_request_when_started_without_a_lifespan(self, monkeypatch):
        derived: list[Any] = []

        def route_guards(routes: Any, settings: Settings) -> list[RouteGuard]:
            derived.append(routes)
            return []

        monkeypatch.setattr(guard, "route_guards", route_guards)
        middleware = RequestGuardMiddleware(inner, routes=[], settings=make_settings(DATABASE_URL))

        await middleware(post("/api/v1/netvalve/payment"), receive, send)
        await middleware(post("/api/v1/netvalve/payment"), receive, send)
        assert len(derived) == 1
