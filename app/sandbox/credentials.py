"""Who may call the sandbox: the merchant's credential headers (plus basic auth when configured)
for NetValve's API, and the basic-auth pair for the back office's sign-in."""

import base64
import hmac
from collections.abc import Mapping
from typing import Any

from app.sandbox.settings import SandboxSettings


def _same(given: str | None, expected: str) -> bool:
    # Constant time, so a caller cannot learn a secret by timing its guesses.
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def merchant_authenticated(settings: SandboxSettings, headers: Mapping[str, str]) -> bool:
    ok = _same(headers.get("netvalve-client-id"), settings.netvalve_client_id) and _same(
        headers.get("netvalve-api-key"), settings.netvalve_api_key.get_secret_value()
    )
    if ok and settings.netvalve_basic_auth_password and settings.netvalve_basic_auth_username:
        pair = (
            f"{settings.netvalve_basic_auth_username}:"
            f"{settings.netvalve_basic_auth_password.get_secret_value()}"
        )
        ok = _same(
            headers.get("authorization"), "Basic " + base64.b64encode(pair.encode()).decode()
        )
    return ok


def portal_credentials_match(settings: SandboxSettings, body: dict[str, Any]) -> bool:
    """Only the basic-auth pair signs in to the back office; with none configured, nobody does."""
    user = settings.netvalve_basic_auth_username
    password = settings.netvalve_basic_auth_password
    if not (user and password):
        return False
    user_ok = _same(_text(body.get("userName")), user)
    password_ok = _same(_text(body.get("password")), password.get_secret_value())
    return user_ok and password_ok


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
