"""Bearer API keys with two scopes: storefront (hpf/session, payment, status) and admin (all).

Keys are compared in constant time against every configured key, so neither the match nor its
position leaks through timing.
"""

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from app.api.deps import SettingsDep
from app.core.errors import AppError

Scope = Literal["storefront", "admin"]
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


def authenticate(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated
    presented = _digest(credentials.credentials)
    key_id = presented.hex()[:16]
    if _matches(presented, settings.admin_api_keys):
        return Principal("admin", key_id)
    if _matches(presented, settings.storefront_api_keys):
        return Principal("storefront", key_id)
    raise NotAuthenticated


def require_storefront(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    return principal


def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.scope != "admin":
        raise InsufficientScope
    return principal


StorefrontPrincipal = Annotated[Principal, Depends(require_storefront)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
AUTH_ERRORS = {**NotAuthenticated.schema(), **InsufficientScope.schema()}
