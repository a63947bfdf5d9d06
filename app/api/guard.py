"""Checks made before a request body is read: the caller's key (or the webhook's header and
address), then the body's size.

FastAPI reads and parses a body before it resolves a route's dependencies, so without this an
unauthenticated caller could make the service buffer any body it likes. The route dependencies
still run afterwards; this only makes them run first for requests that carry a body.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import (
    InsufficientScope,
    authenticate,
    bearer,
    identify,
    require_admin,
    require_metrics,
    require_server,
    require_storefront,
)
from app.api.auth import (
    Scope as KeyScope,
)
from app.api.v1.endpoints.netvalve.webhook import WebhookTooLarge, verify_source
from app.core.config import Settings
from app.core.errors import AppError

# Which key scopes each auth dependency lets through; the order is the order they are looked for.
_SCOPES: dict[Callable[..., Any], frozenset[KeyScope]] = {
    require_admin: frozenset({"admin"}),
    require_metrics: frozenset({"admin", "metrics"}),
    require_server: frozenset({"admin", "medusa"}),
    require_storefront: frozenset({"admin", "medusa", "storefront"}),
    authenticate: frozenset({"admin", "medusa", "storefront", "metrics"}),
}
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestTooLarge(AppError):
    """The request body is larger than this route accepts."""

    status_code = 413
    message = "The request body is too large."


@dataclass(frozen=True, slots=True)
class RouteGuard:
    path: re.Pattern[str]
    methods: frozenset[str]
    scopes: frozenset[KeyScope] | None
    """The key scopes the route accepts; None when it takes no API key."""
    webhook: bool
    max_body: int
    too_large: type[AppError]


def _calls(dependant: Dependant) -> set[Callable[..., Any]]:
    calls: set[Callable[..., Any]] = set()
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            calls.add(dependency.call)
        calls |= _calls(dependency)
    return calls


def _api_routes(routes: Sequence[BaseRoute]) -> list[Any]:
    """Every API route with its effective path and dependencies, routers included (FastAPI
    keeps an included router as one entry and resolves its routes on demand)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:  # FastAPI before included routers were kept whole
        return [route for route in routes if isinstance(route, APIRoute)]
    return [
        context
        for context in contexts(routes)
        if isinstance(context.original_route, APIRoute) and context.dependant is not None
    ]


def route_guards(routes: Sequence[BaseRoute], settings: Settings) -> list[RouteGuard]:
    """What each API route requires, read from its dependencies, so a new route is covered by
    the same dependency that protects it."""
    guards = []
    for route in _api_routes(routes):
        calls = _calls(route.dependant)
        scopes = next((_SCOPES[call] for call in _SCOPES if call in calls), None)
        webhook = verify_source in calls
        methods = frozenset(route.methods)
        too_large: type[AppError]
        if webhook:
            limit, too_large = settings.netvalve_webhook_max_body_bytes, WebhookTooLarge
        else:
            limit, too_large = settings.max_request_body_bytes, RequestTooLarge
        guards.append(RouteGuard(route.path_regex, methods, scopes, webhook, limit, too_large))
    return guards


def _route_path(scope: Scope) -> str:
    """scope["path"] without the root path, as Starlette's router matches it."""
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


class _BodyLimitExceeded(Exception):
    pass


class RequestGuardMiddleware:
    """A pure ASGI middleware (no per-request task or buffering): refuses a body over the route's
    limit from Content-Length, stops a chunked or understated body as soon as it passes the limit,
    and authenticates before the first body byte is read. Every refusal is the standard error
    body with `Connection: close`, so the server stops reading what the client still sends."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute], settings: Settings) -> None:
        self.app = app
        self.routes = routes  # the application's own list, complete by start-up
        self.settings = settings
        self._guards: list[RouteGuard] | None = None

    def guards(self) -> list[RouteGuard]:
        if self._guards is None:
            self._guards = route_guards(self.routes, self.settings)
        return self._guards

    def guard_for(self, scope: Scope) -> RouteGuard | None:
        # The path the router matches: without the root path (uvicorn --root-path, a proxy's
        # prefix), which scope["path"] includes.
        path, method = _route_path(scope), scope["method"]
        for guard in self.guards():
            if method in guard.methods and guard.path.match(path):
                return guard
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                # Derived at start-up (tens of milliseconds: FastAPI resolves every included
                # route then), so that the first request does not wait for it.
                self.guards()
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
        if scope["method"] in _BODYLESS_METHODS and not declared and not chunked:
            await self.app(scope, receive, send)
            return
        guard = self.guard_for(scope)
        try:
            await self._admit(scope, guard)
        except AppError as error:
            await refuse(error, scope, receive, send)
            return
        limit = guard.max_body if guard else self.settings.max_request_body_bytes
        too_large = guard.too_large if guard else RequestTooLarge
        if declared is not None and declared > limit:
            await refuse(too_large(), scope, receive, send)
            return
        await self._bounded(scope, receive, send, limit, too_large)

    async def _admit(self, scope: Scope, guard: RouteGuard | None) -> None:
        """The route's own checks, run here on the headers alone; they raise its AppErrors."""
        if guard is None:
            return
        request = Request(scope)
        if guard.webhook:
            await verify_source(request, self.settings)
        if guard.scopes is not None:
            principal = identify(self.settings, await bearer(request))
            if principal.scope not in guard.scopes:
                raise InsufficientScope

    async def _bounded(
        self, scope: Scope, receive: Receive, send: Send, limit: int, too_large: type[AppError]
    ) -> None:
        received = 0
        exceeded = False
        response_started = False

        async def bounded_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyLimitExceeded
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded:
                # Whatever the application made of the aborted read (FastAPI turns it into a
                # 400), the caller is told the truth once.
                if not response_started:
                    response_started = True
                    await refuse(too_large(), scope, receive, send)
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except _BodyLimitExceeded:
            if not response_started:
                response_started = True
                await refuse(too_large(), scope, receive, send)


async def refuse(error: AppError, scope: Scope, receive: Receive, send: Send) -> None:
    request_id = str(scope.get("state", {}).get("request_id", ""))
    headers = {**error.headers, "Connection": "close"}
    response = JSONResponse(error.body(request_id), status_code=error.status_code, headers=headers)
    await response(scope, receive, send)
