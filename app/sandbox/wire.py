"""NetValve's JSON conventions: timestamps, refusal and field-error bodies, exact decimals in."""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

Body = dict[str, Any] | list[dict[str, Any]]
Answer = tuple[int, Body]


def timestamp() -> str:
    """`2024-11-08T12:38:58.140+00:00`, as NetValve stamps its responses."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+00:00"


def field_error(code: str, field_name: str, message: str) -> dict[str, str]:
    # Two spaces before "Message", as NetValve writes it.
    return {
        "responseCode": code,
        "responseMessage": f"Validation error for field = {field_name}  Message:- {message}",
        "responseCodeType": "SOFT DECLINE",
    }


def refusal(code: str, message: str, http_status: int = 400) -> Answer:
    return http_status, {
        "traceID": str(uuid.uuid4()),
        "responseTimestamp": timestamp(),
        "responseCode": code,
        "responseMessage": message,
        "responseCodeType": "SOFT DECLINE",
    }


def parse_body(raw: bytes) -> dict[str, Any] | None:
    """Amounts keep their exact decimals (`parse_float=Decimal`); None if not a JSON object."""
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, InvalidOperation):
        return None
    return body if isinstance(body, dict) else None


INVALID_BODY: Answer = (400, [field_error("GTW_2063", "body", "Invalid JSON.")])
MISSING_TRANSACTION_ID: Answer = (
    400,
    [field_error("GTW_2048", "transactionId", "Transaction ID missing.")],
)
