"""One error base, and handlers that render every error as `ErrorResponse`.

Expected failures carry a 4xx; a 5xx means a real fault, so it stays worth alerting on.
"""

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, cast

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db.errors import is_database_down
from app.schemas.error import ErrorResponse, ValidationIssue

log = structlog.get_logger(__name__)


class AppError(Exception):
    """Base of the service's domain errors; the class name becomes the `error` field."""

    status_code: int = 500
    message: str = "An unexpected error occurred."

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.message = message or self.message
        self.status_code = status_code or self.status_code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        """Members added to the error body beside error/detail/request_id (e.g. the payment)."""
        super().__init__(self.message)

    def body(self, request_id: str) -> dict[str, Any]:
        rendered = ErrorResponse(
            error=type(self).__name__, detail=self.message, request_id=request_id
        )
        return {**rendered.model_dump(mode="json"), **self.extra}

    @classmethod
    def schema(cls, model: type[ErrorResponse] = ErrorResponse) -> dict[int | str, dict[str, Any]]:
        """An entry for a route's `responses=`, so the error is documented in OpenAPI."""
        return {cls.status_code: {"model": model, "description": cls.__doc__ or ""}}


class MalformedJSON(AppError):
    """The request body is not valid JSON."""

    status_code = 400
    message = "The request body is not valid JSON."


class DatabaseUnavailable(AppError):
    """This service's database cannot be reached; retry with the same Idempotency-Key."""

    status_code = 503
    message = "The service's database is unavailable; retry shortly with the same request."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "5"})


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def error_name(status_code: int) -> str:
    """`404` -> `NotFound`: the name used when no domain error class applies."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        return "HTTPError"
    return re.sub(r"[^A-Za-z]", "", phrase.title())


def error_response(
    status_code: int,
    error: str,
    detail: str | Sequence[ValidationIssue],
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        error=error,
        detail=list(detail) if not isinstance(detail, str) else detail,
        request_id=request_id,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


async def _app_error(request: Request, error: Exception) -> JSONResponse:
    exc = cast(AppError, error)
    return JSONResponse(
        exc.body(request_id_of(request)), status_code=exc.status_code, headers=exc.headers
    )


HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def allowed_methods(request: Request, allow: str) -> str:
    """`allow` (Starlette's `Allow` header) plus every method documented at this path.

    Starlette's 405 names only the methods of the first route that matched the path, so a path
    served by two routes (GET and POST /hpf/session) would be answered with half its `Allow`.
    The OpenAPI document knows them all.
    """
    methods = {method.strip() for method in allow.split(",") if method.strip()}
    app = request.app
    paths: dict[str, dict[str, Any]] = (
        app.openapi().get("paths", {}) if isinstance(app, FastAPI) else {}
    )
    path = request.scope.get("path", "")
    for template, item in paths.items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path):
            methods |= {method.upper() for method in item if method in HTTP_METHODS}
    return ", ".join(sorted(methods))


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, error)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request, headers.get("Allow", ""))
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI's "There was an error parsing the body": a body that is not even UTF-8 is
        # malformed JSON like any other, and gets the same error name.
        return _malformed_json(request)
    detail = exc.detail if isinstance(exc.detail, str) else error_name(exc.status_code)
    return error_response(
        exc.status_code, error_name(exc.status_code), detail, request_id_of(request), headers
    )


def _malformed_json(request: Request) -> JSONResponse:
    return error_response(400, "MalformedJSON", MalformedJSON.message, request_id_of(request))


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    errors = cast(RequestValidationError, error).errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return _malformed_json(request)
    # The offending input is never echoed back, not even in part: it may be a secret or a card
    # number.
    issues = [
        ValidationIssue(loc=_safe_loc(error), msg=_safe_message(error), type=str(error["type"]))
        for error in errors
    ]
    return error_response(422, "RequestValidationError", issues, request_id_of(request))


# Context in which pydantic describes what it found in the input ("found `n` at 0" in a UUID);
# its message quotes it after a comma. Our own validators' errors (value_error) never do.
_INPUT_CONTEXT = frozenset({"error", "reason"})
UNKNOWN_FIELD = "(unknown field)"


def _safe_message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    if error["type"] != "value_error" and _INPUT_CONTEXT & set(error.get("ctx") or {}):
        message = message.split(",", 1)[0]  # "Input should be a valid UUID"
    given = error.get("input")
    if isinstance(given, str | int) and not isinstance(given, bool):
        text = str(given)
        if len(text) >= 2 and text in message:
            return "The value is not valid here."
    return message


def _safe_loc(error: Mapping[str, Any]) -> list[str | int]:
    loc = [part if isinstance(part, int) else str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden" and loc:
        loc[-1] = UNKNOWN_FIELD  # the name is the client's, not ours
    return loc


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    if not is_database_down(error):
        raise error
    log.error("database.unavailable", error=type(error).__name__)
    return await _app_error(request, DatabaseUnavailable())


def register_exception_handlers(app: FastAPI) -> None:
    for kind in (DBAPIError, PoolTimeout, OSError, asyncpg.PostgresConnectionError):
        app.add_exception_handler(kind, _database_error)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
