"""Bearer API keys in four scopes:
- storefront: hpf/session, payment and status, rate limited per key and client address;
- medusa: the Medusa provider's server-to-server calls, exactly what it needs: hpf/session,
  payment, status, capture, refund and cancel; not rate limited per address (every call comes
  from the Medusa server), and no access to webhook events, extra charges or notifications;
- admin: every route;
- metrics: only /metrics.

Keys are compared in constant time against every configured key, so neither the match nor its
position leaks through timing. Storefront routes are rate limited per key and client address.
"""

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from app.api.client import client_ip
from app.core.config import Settings
from app.core.errors import AppError
from app.core.state import Resources

Scope = Literal["storefront", "medusa", "admin", "metrics"]
bearer = HTTPBearer(auto_error=False, description="A storefront or admin API key.")


class NotAuthenticated(AppError):
    """No API key, or one this service does not know."""

    status_code = 401
    message = "A valid API key is required: Authorization: Bearer <key>."

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


class InsufficientScope(AppError):
    """The API key is valid but may not call this route."""

    status_code = 403
    message = "This API key may not call this route."


class RateLimited(AppError):
    """Too many requests from this API key and address; retry after `Retry-After` seconds."""

    status_code = 429
    message = "Too many requests; retry after the number of seconds in Retry-After."

    def __init__(self, retry_after: int) -> None:
        super().__init__(headers={"Retry-After": str(retry_after)})


@dataclass(frozen=True, slots=True)
class Principal:
    scope: Scope
    key_id: str
    """A fingerprint of the key (never the key), to scope idempotency keys and logs."""


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _matches(presented: bytes, keys: list[SecretStr]) -> bool:
    found = False
    for key in keys:
        found |= hmac.compare_digest(presented, _digest(key.get_secret_value()))
    return found


def _resources(request: Request) -> Resources:
    # Read here rather than through `ResourcesDep`: FastAPI solves a sub-dependency again, down
    # to its leaves, before it looks in its per-request cache, so every route would pay for the
    # chain once per auth dependency that names it.
    resources: Resources = request.app.state.resources
    return resources


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return identify(_resources(request).settings, credentials)


def identify(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller of a key, compared against every configured key (see the module docstring)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated
    presented = _digest(credentials.credentials)
    key_id = presented.hex()[:16]
    if _matches(presented, settings.admin_api_keys):
        return Principal("admin", key_id)
    if _matches(presented, settings.medusa_api_keys):
        return Principal("medusa", key_id)
    if _matches(presented, settings.storefront_api_keys):
        return Principal("storefront", key_id)
    if _matches(presented, settings.metrics_api_keys):
        return Principal("metrics", key_id)
    raise NotAuthenticated


async def require_storefront(
    principal: Annotated[Principal, Depends(authenticate)], request: Request
) -> Principal:
    if principal.scope == "metrics":
        raise InsufficientScope
    resources = _resources(request)
    limiter = resources.rate_limiter
    if limiter is not None and principal.scope != "medusa":
        caller = f"{principal.key_id}|{client_ip(request, resources.settings)}"
        retry_after = limiter.acquire(caller)
        if retry_after is not None:
            raise RateLimited(retry_after)
    return principal


async def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.scope != "admin":
        raise InsufficientScope
    return principal


async def require_server(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Capture, refund and cancel: the merchant's own operations, by an admin or the Medusa
    provider acting for the merchant's admin."""
    if principal.scope not in ("admin", "medusa"):
        raise InsufficientScope
    return principal


async def require_metrics(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.scope not in ("admin", "metrics"):
        raise InsufficientScope
    return principal


StorefrontPrincipal = Annotated[Principal, Depends(require_storefront)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
ServerPrincipal = Annotated[Principal, Depends(require_server)]
MetricsPrincipal = Annotated[Principal, Depends(require_metrics)]
AUTH_ERRORS = {**NotAuthenticated.schema(), **InsufficientScope.schema()}
STOREFRONT_AUTH_ERRORS = {**AUTH_ERRORS, **RateLimited.schema()}
