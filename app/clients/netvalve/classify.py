"""An HTTP answer from NetValve, read into exactly one result (results.py)."""

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from app.clients.netvalve.records import PENDING_CODE, in_code_range
from app.clients.netvalve.results import (
    LOOKUPS,
    Approved,
    AuthenticationFailed,
    Declined,
    FieldError,
    HpfScript,
    HpfScriptList,
    HpfSessionInit,
    HppOrder,
    NetvalveResult,
    Operation,
    Pending,
    UnknownOutcome,
    ValidationFailed,
    answer_fields,
)
from app.clients.netvalve.values import as_text, as_url

AUTH_FAILURE_CODES = frozenset({"GTW_9001", "GTW_9002", "GTW_2082"})


def classify(operation: Operation, status: int, content: bytes) -> NetvalveResult:
    body = _parse(content)
    if status >= 500 or status == 429:
        # 429 also means "duplicate request detected": the first one may have gone through.
        return UnknownOutcome(operation=operation, http_status=status, reason=f"http_{status}")
    if status in (401, 403):
        code, message = _code_and_message(body)
        return AuthenticationFailed(
            operation=operation, http_status=status, response_code=code, response_message=message
        )
    if status < 300 and operation == "backoffice_scripts" and isinstance(body, list):
        return _script_list(status, body)
    if status < 300 and not isinstance(body, dict):
        return UnknownOutcome(operation=operation, http_status=status, reason="malformed_body")
    if status == 400 and isinstance(body, list):
        errors = tuple(
            FieldError(str(item.get("responseCode")), str(item.get("responseMessage")))
            for item in body
            if isinstance(item, dict)
        )
        return ValidationFailed(operation=operation, http_status=status, errors=errors)
    if not isinstance(body, dict):
        # Any other 4xx: refused before processing, even without a readable body.
        return Declined(operation=operation, http_status=status, response_message=f"HTTP {status}")
    return _classify_object(operation, status, body)


def _parse(content: bytes) -> object:
    try:
        # Amounts stay exact: 44.00 is read as Decimal("44.00"), never as a float.
        return json.loads(content, parse_float=Decimal)
    except ValueError:
        return None


def _code_and_message(body: object) -> tuple[str | None, str | None]:
    if isinstance(body, dict):
        code, message = body.get("responseCode"), body.get("responseMessage")
        return (str(code) if code else None, str(message) if message else None)
    return None, None


def _classify_object(operation: Operation, status: int, body: dict[str, Any]) -> NetvalveResult:
    code, message = _code_and_message(body)
    code_type = body.get("responseCodeType")
    common: dict[str, Any] = {
        "operation": operation,
        "http_status": status,
        "body": body,
        "response_code": code,
        "response_message": message,
        "response_code_type": str(code_type) if code_type else None,
        **answer_fields(operation, body),
    }
    if code in AUTH_FAILURE_CODES:
        return AuthenticationFailed(
            operation=operation, http_status=status, response_code=code, response_message=message
        )
    if status >= 300:
        return Declined(**common)
    if operation in LOOKUPS:
        return Approved(**common)
    if code is None:
        return UnknownOutcome(operation=operation, http_status=status, reason="no_response_code")
    kind = str(code_type or "").upper()
    if code == PENDING_CODE or kind == "PENDING":
        return Pending(**common)
    if kind == "APPROVED" or (not kind and in_code_range(code, 1000, 1999)):
        return _approved(operation, common)
    return Declined(**common)


def _approved(operation: Operation, common: dict[str, Any]) -> Approved:
    """Approved, typed by what the operation returns when its answer holds it."""
    body: Mapping[str, Any] = common["body"]
    token, redirect = as_text(body.get("paymentToken")), as_url(body.get("redirectUrl"))
    if operation == "hpf_session" and token:
        return HpfSessionInit(
            **common,
            payment_token=token,
            script_src=as_url(body.get("netvalveScriptSrc")),
            integrity=as_text(body.get("integrity")),
        )
    if operation == "hpp_order" and redirect:
        return HppOrder(**common, redirect_url=redirect)
    return Approved(**common)


def _script_list(status: int, items: list[Any]) -> HpfScriptList:
    scripts = tuple(_script(item) for item in items if isinstance(item, Mapping))
    return HpfScriptList(
        operation="backoffice_scripts",
        http_status=status,
        body={"items": items},
        scripts=scripts,
    )


def _script(item: Mapping[str, Any]) -> HpfScript:
    return HpfScript(
        script_src=as_url(item.get("netvalveScriptSrc")),
        integrity=as_text(item.get("integrity")),
        status=as_text(item.get("status")),
        # Anything but a plain false reads as deleted: a script in doubt is not used.
        deleted=item.get("deleted") not in (None, False),
        is_default=item.get("isDefault") is True,
        created=as_text(item.get("createdDate")),
    )
