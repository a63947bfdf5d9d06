"""Security headers on every response.

The API serves JSON only, so its policy forbids everything a browser could do with a response:
no scripts, no framing, no sniffing, no caching. Swagger UI at /docs (and ReDoc) needs its script
and styles from FastAPI's CDN, so those pages get a policy that allows exactly that.
"""

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


RawHeaders = tuple[tuple[bytes, bytes], ...]


def _raw(policy: str) -> RawHeaders:
    headers = {**STATIC_HEADERS, "Content-Security-Policy": policy}
    return tuple((name.lower().encode(), value.encode()) for name, value in headers.items())


_API_HEADERS = _raw(API_POLICY)
_DOCS_HEADERS = _raw(DOCS_POLICY)


def security_headers(path: str) -> RawHeaders:
    """The headers every response at `path` carries unless it sets them itself (added by
    `app.core.middleware.RequestContextMiddleware`), as ASGI header pairs built once."""
    return _DOCS_HEADERS if path in DOCS_PATHS else _API_HEADERS
