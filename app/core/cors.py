"""Starlette's CORS middleware, with a refused preflight answered in the one error shape."""

from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from app.core.errors import error_response

PREFLIGHT_REFUSED = "CORSPreflightRefused"


def _vary_on_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with Origin added to Vary, the one header Starlette adds when no Origin came."""
    values = [value for name, value in headers if name == b"vary"]
    kept = [pair for pair in headers if pair[0] != b"vary"]
    kept.append((b"vary", b", ".join([*values, b"Origin"])))
    return kept


class ErrorShapeCORSMiddleware(CORSMiddleware):
    """Starlette answers a disallowed preflight with plain text ("Disallowed CORS origin");
    this answers it as `{error, detail, request_id}`, like every other error."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not any(name == b"origin" for name, _ in scope["headers"]):
            # Not a browser's cross-origin request (Medusa, NetValve): Starlette would only add
            # `Vary: Origin`, which is done here without its header objects and wrappers.
            await self.app(scope, receive, self._vary_sender(send))
            return
        if scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "access-control-request-method" in headers:
                await self._preflight(scope, receive, send, headers)
                return
        await super().__call__(scope, receive, send)

    @staticmethod
    def _vary_sender(send: Send) -> Send:
        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _vary_on_origin(list(message.get("headers", ())))
            await send(message)

        return send_with_vary

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
