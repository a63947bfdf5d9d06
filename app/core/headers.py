"""Security headers on every response.

The API serves JSON only, so its policy forbids everything a browser could do with a response:
no scripts, no framing, no sniffing, no caching. Swagger UI at /docs (and ReDoc) needs its script
and styles from FastAPI's CDN, so those pages get a policy that allows exactly that.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src https://fonts.gstatic.com; connect-src 'self'; worker-src blob:; "
    "frame-ancestors 'none'; base-uri 'none'"
)
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")

STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Cache-Control": "no-store",
}

RawHeaders = list[tuple[bytes, bytes]]


def _raw(headers: dict[str, str]) -> RawHeaders:
    # ASGI header names are lowercase bytes; built once here rather than encoded per response.
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


API_HEADERS = _raw({**STATIC_HEADERS, "Content-Security-Policy": API_POLICY})
DOCS_HEADERS = _raw({**STATIC_HEADERS, "Content-Security-Policy": DOCS_POLICY})


def with_defaults(headers: RawHeaders, defaults: RawHeaders) -> RawHeaders:
    """`headers` plus each default it does not set itself: a route's own value wins."""
    present = {name for name, _ in headers}
    return headers + [pair for pair in defaults if pair[0] not in present]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        defaults = DOCS_HEADERS if scope["path"] in DOCS_PATHS else API_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_defaults(list(message.get("headers", ())), defaults)
            await send(message)

        await self.app(scope, receive, send_with_headers)
