"""How the routes answer: NetValve's JSON with exact amounts, and its 401 body."""

import uuid
from typing import Any

from fastapi.responses import Response

from app.core.money import json_with_amounts
from app.sandbox.wire import Answer, timestamp


class WireResponse(Response):
    """JSON with amounts as exact two-decimal numbers, as NetValve writes them."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_with_amounts(content)


def answer(result: Answer) -> WireResponse:
    status, body = result
    return WireResponse(body, status_code=status)


class AuthenticationRequired(Exception):
    """Raised by the credential dependencies; rendered as NetValve's 401 GTW_9001 body."""


def authentication_failure() -> WireResponse:
    return WireResponse(
        {
            "traceID": str(uuid.uuid4()),
            "responseTimestamp": timestamp(),
            "responseCode": "GTW_9001",
            "responseMessage": "Authentication failure.",
            "responseCodeType": "HARD DECLINE",
        },
        status_code=401,
    )
