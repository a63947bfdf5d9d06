"""The outermost layer of every HTTP request: its id, the security headers, one access line, the
request-duration metric, and the standard 500 for an error that nothing inside answered.

One pure ASGI layer does all five because each layer wraps `send` for every message of every
request; as separate layers they cost more than the jobs themselves on the payment route.
"""

import re
import time
import uuid
from collections.abc import Iterable

import structlog
from prometheus_client.metrics import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import metrics
from app.core.errors import error_response
from app.core.headers import RawHeaders, security_headers

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _request_id(scope: Scope) -> str:
    """The caller's id if it is well-formed, else a new one."""
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_KEY:
            incoming = value.decode("latin-1")
            return incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    return uuid.uuid4().hex


def _response_headers(
    headers: Iterable[tuple[bytes, bytes]], request_id: bytes, defaults: RawHeaders
) -> list[tuple[bytes, bytes]]:
    """`headers` with our request id in place of any other, and each default the response does
    not set itself."""
    kept = [(name, value) for name, value in headers if name.lower() != _REQUEST_ID_KEY]
    present = {name.lower() for name, _ in kept}
    kept.append((_REQUEST_ID_KEY, request_id))
    kept += [header for header in defaults if header[0] not in present]
    return kept


def _route_template(scope: Scope) -> str:
    """The matched route as a template (`/api/v1/netvalve/webhook-events/{event_id}`), so that
    ids never become label values; anything unmatched shares one label.

    Rebuilt from the path and its parameters: a route included through routers knows only its
    own part of the path."""
    if scope.get("route") is None:
        return "unmatched"
    path_params = scope.get("path_params")
    if not path_params:
        return str(scope["path"])
    params = {str(value): name for name, value in path_params.items()}
    segments = str(scope["path"]).split("/")
    return "/".join(f"{{{params[part]}}}" if part in params else part for part in segments)


# One histogram child per label set, looked up once: `labels()` validates and locks every call.
_durations: dict[tuple[str, str, int], Histogram] = {}


def _observe(method: str, route: str, status: int, seconds: float) -> None:
    child = _durations.get((method, route, status))
    if child is None:
        child = metrics.HTTP_REQUEST_SECONDS.labels(method, route, str(status))
        _durations[method, route, status] = child
    child.observe(seconds)


class RequestContextMiddleware:
    """Gives each request an id (the caller's, if well-formed) and every response the security
    headers, logs one access line, and turns an unhandled exception into the standard 500 body,
    so no error escapes without the id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        raw_id = request_id.encode("latin-1")
        defaults = security_headers(scope["path"])
        scope.setdefault("state", {})["request_id"] = request_id
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        started_at = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_context(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                message["headers"] = _response_headers(message.get("headers", ()), raw_id, defaults)
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except Exception:
            log.exception("http.unhandled_error", method=scope["method"], path=scope["path"])
            if response_started:
                raise
            response = error_response(
                500, "InternalServerError", "An unexpected error occurred.", request_id
            )
            await response(scope, receive, send_with_context)
        finally:
            elapsed = time.perf_counter() - started_at
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status_code,
                duration_ms=round(elapsed * 1000, 2),
            )
            _observe(scope["method"], _route_template(scope), status_code, elapsed)
            structlog.contextvars.reset_contextvars(**tokens)
