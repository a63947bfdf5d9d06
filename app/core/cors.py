"""Starlette's CORS middleware, with a refused preflight answered in the one error shape."""

from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from app.core.errors import error_response

PREFLIGHT_REFUSED = "CORSPreflightRefused"


class ErrorShapeCORSMiddleware(CORSMiddleware):
    """Starlette answers a disallowed preflight with plain text ("Disallowed CORS origin");
    this answers it as `{error, detail, request_id}`, like every other error."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                await self._preflight(scope, receive, send, headers)
                return
        await super().__call__(scope, receive, send)

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers
    ) -> None:
        response = self.preflight_response(request_headers=headers)
        if response.status_code >= 400:
            kept = {
                name: value
                for name, value in response.headers.items()
                if name not in ("content-type", "content-length")
            }
            request_id = str(scope.get("state", {}).get("request_id", ""))
            detail = bytes(response.body).decode()  # "Disallowed CORS origin, headers"
            response = error_response(
                response.status_code, PREFLIGHT_REFUSED, detail, request_id, kept
            )
        await response(scope, receive, send)
