"""What the NetValve route modules share: the idempotent-POST helper and documented errors."""

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.auth import AUTH_ERRORS, Principal
from app.core.errors import MalformedJSON, request_id_of
from app.db.session import Phases
from app.schemas.error import ErrorResponse
from app.schemas.payment import PaymentResponse
from app.services.idempotency import (
    IDEMPOTENCY_HEADER,
    KEY_RULES,
    IdempotencyKeyInFlight,
    IdempotencyKeyInvalid,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    IdempotencyService,
)
from app.services.netvalve.errors import PaymentInProgress, PaymentNotFound
from app.services.netvalve.outcomes import GatewayMisconfigured, GatewayUnavailable
from app.services.netvalve.results import PaymentResult

REPLAYED_HEADER = "Idempotent-Replayed"


def one_of(model: type[BaseModel], *errors: type[Exception]) -> dict[str, Any]:
    """An OpenAPI answer that any of `errors` gives, each described by its docstring."""
    return {"model": model, "description": " Or: ".join(str(error.__doc__) for error in errors)}


# Read as optional, so that a missing key gets IdempotencyKeyMissing (400) and a malformed one
# IdempotencyKeyInvalid (400) from the service rather than a generic 422; documented as what it
# is, required, in MONEY_OPENAPI.
IdempotencyKeyHeader = Annotated[
    str | None, Header(alias=IDEMPOTENCY_HEADER, include_in_schema=False)
]
MONEY_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": IDEMPOTENCY_HEADER,
            "in": "header",
            "required": True,
            "description": "A unique key per operation (e.g. Medusa's capt_..., ref_...), "
            f"{KEY_RULES}; a retry with the same key replays the first answer, and the key "
            "cannot be used with a different body.",
            "schema": {"type": "string", "minLength": 8, "maxLength": 255, "pattern": "^[!-~]+$"},
        }
    ]
}

MONEY_ERRORS: dict[int | str, dict[str, Any]] = {
    202: {"model": PaymentResponse, "description": "Sent, outcome not yet known: pending."},
    **AUTH_ERRORS,
    400: {
        "model": ErrorResponse,
        "description": f"{IdempotencyKeyMissing.__doc__} Or: {IdempotencyKeyInvalid.__doc__} "
        f"Or: {MalformedJSON.__doc__}",
    },
    **IdempotencyKeyInFlight.schema(),
    **IdempotencyKeyReused.schema(),
    **PaymentInProgress.schema(),
    **GatewayMisconfigured.schema(),
    **GatewayUnavailable.schema(),
}
OPERATION_ERRORS: dict[int | str, dict[str, Any]] = {**MONEY_ERRORS, **PaymentNotFound.schema()}


async def idempotent(
    request: Request,
    idempotency: IdempotencyService,
    principal: Principal,
    key: str | None,
    body: BaseModel,
    action: Callable[[Phases], Awaitable[PaymentResult]],
) -> JSONResponse:
    async def answer(phases: Phases) -> tuple[int, Any]:
        result = await action(phases)
        return status_of(result), result.payment.model_dump(mode="json")

    answered = await idempotency.run(
        scope=principal.key_id,
        key=key,
        method=request.method,
        path=request.url.path,
        body=body,
        request_id=request_id_of(request),
        action=answer,
    )
    headers = dict(answered.headers)
    if answered.replayed:
        headers[REPLAYED_HEADER] = "true"
    return JSONResponse(answered.body, status_code=answered.status_code, headers=headers)


def request_key(principal: Principal, key: str | None) -> str | None:
    """What identifies one request across retries: the caller's key, scoped to its API key."""
    if key is None:
        return None
    return hashlib.sha256(f"{principal.key_id}\n{key}".encode()).hexdigest()


def status_of(result: PaymentResult) -> int:
    """202 while NetValve's final answer is not known (the body shows the payment as it is),
    200 once it is."""
    return 202 if result.in_progress else 200


def plain(result: PaymentResult) -> JSONResponse:
    return JSONResponse(result.payment.model_dump(mode="json"), status_code=status_of(result))
