"""NetValve's undocumented back-office portal (NETVALVE_API.md §9, the HPF waterfall's step 2):
the access tokens sign-in issues, and the HPF script records they unlock."""

import base64
import hashlib
import secrets
import time
from typing import Any

from app.sandbox.hosted import SDK_SCRIPT, SDK_VERSION

TOKEN_TTL_SECONDS = 3600


def _sri(content: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


# (id, isDefault, createdDate, integrity) of the back office's HPF script records: an older
# record whose integrity no longer matches the served SDK, then the default, which does.
SCRIPTS = (
    (101, False, "2024-06-03T09:15:00.000+00:00", _sri(b"/* an earlier sandbox SDK build */")),
    (102, True, "2024-11-08T12:38:58.140+00:00", _sri(SDK_SCRIPT.encode())),
)


class AccessTokens:
    """Access tokens issued by sign-in, each valid for `TOKEN_TTL_SECONDS`."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}  # token -> time.monotonic() at expiry

    def issue(self) -> str:
        now = time.monotonic()
        for expired in [token for token, until in self._expiry.items() if until <= now]:
            del self._expiry[expired]
        token = secrets.token_urlsafe(32)
        self._expiry[token] = now + TOKEN_TTL_SECONDS
        return token

    def valid(self, token: str) -> bool:
        until = self._expiry.get(token)
        return until is not None and time.monotonic() < until

    def clear(self) -> None:
        self._expiry.clear()


def scripts(base_url: str) -> list[dict[str, Any]]:
    src = f"{base_url}/hpf/sdk.js?version={SDK_VERSION}"
    return [
        {
            "id": script_id,
            "status": "ACTIVE",
            "deleted": False,
            "isDefault": is_default,
            "createdDate": created,
            "netvalveScriptSrc": src,
            "integrity": integrity,
            "clientVersion": SDK_VERSION,
        }
        for script_id, is_default, created, integrity in SCRIPTS
    ]
