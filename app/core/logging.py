"""JSON logs with a request id on every line, and redaction of secrets and card numbers.

Redaction is a last line of defence: secrets are `SecretStr` and card data never reaches this
service, but a gateway response or an exception message could still carry either. Values are
redacted by the key they sit under, by shape (card numbers, also spaced, dashed or dotted), and by
value: every secret the settings hold, wherever it appears in a line, tracebacks included.
"""

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.types import EventDict, Processor

from app.core import metrics
from app.core.cards import mask_candidate, may_hold_pan
from app.core.errors import error_response

log = structlog.get_logger(__name__)

REDACTED = "[REDACTED]"
_HANDLER_NAME = "netvalve-gateway-json"

_SENSITIVE_KEY = re.compile(
    r"(api[-_]?key|secret|passw(or)?d|token|authori[sz]ation|cookie|card[-_]?number|"
    r"\bpan\b|cvv|cvc|security[-_]?code|credentials?)",
    re.IGNORECASE,
)
# 13 to 19 digits, optionally grouped by spaces, dashes or dots: the shape of a card number.
_PAN_CANDIDATE = re.compile(r"(?<![\d])(?:\d[ .-]?){12,18}\d(?![\d])")
# Shorter values would redact ordinary words; the settings refuse secrets this short anyway.
MIN_SECRET_LENGTH = 8


class _SecretValues:
    """The secret values to redact wherever they appear, as one alternation compiled once per
    change (a handful of values: the regex engine's literal matching is fast enough here)."""

    def __init__(self) -> None:
        self.values: frozenset[str] = frozenset()
        self.pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        new = {value for value in values if len(value) >= MIN_SECRET_LENGTH} - self.values
        if not new:
            return
        self.values |= new
        # Longest first, so that a secret containing another is replaced whole.
        forms = {form for value in self.values for form in _rendered_forms(value)}
        ordered = sorted(forms, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(value) for value in ordered))

    def redact(self, text: str) -> str:
        pattern = self.pattern
        return text if pattern is None else pattern.sub(REDACTED, text)


def _rendered_forms(value: str) -> set[str]:
    """`value` as it can appear in a rendered line: as is, inside the repr of a string or of
    bytes (an exception, a URL as bytes), and each of those JSON-escaped (quotes, backslashes
    and non-ASCII characters are escaped in the line)."""
    escaped = repr(value)[1:-1]
    as_bytes = repr(value.encode())[2:-1]
    python = {value, escaped, escaped.replace("'", "\\'"), as_bytes, as_bytes.replace("'", "\\'")}
    forms = python | {json.dumps(form)[1:-1] for form in python}
    forms |= {json.dumps(form, ensure_ascii=False)[1:-1] for form in python}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


_SECRETS = _SecretValues()


def register_secrets(values: Iterable[str]) -> None:
    """Redact these values from every log line from now on (values only add up: a process that
    serves several configurations, as the tests do, keeps all of them redacted)."""
    _SECRETS.add(values)


def registered_secrets() -> frozenset[str]:
    return _SECRETS.values


def redact_secrets(text: str) -> str:
    return _SECRETS.redact(text)


def _mask_pan(match: re.Match[str]) -> str:
    return mask_candidate(match.group())


# Our own ids (UUIDs, with or without dashes): their digit groups can look like a grouped card
# number that passes Luhn, and masking them would make logs disagree with the database.
_ID = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|"
    r"[0-9a-f]{32})(?![0-9A-Za-z])",
    re.IGNORECASE,
)


def mask_card_numbers(text: str) -> str:
    """Mask anything shaped like a valid card number to first six and last four digits; ids
    shaped like UUIDs are left whole."""
    if len(text) < 13 or not may_hold_pan(text, b" .-"):
        return text  # most values. Not a search of the whole text: a card number can run into
        # an id's digits there and fail to match, which the pieces between ids do not.
    pieces: list[str] = []
    start = 0
    for match in _ID.finditer(text):
        pieces += [_PAN_CANDIDATE.sub(_mask_pan, text[start : match.start()]), match.group()]
        start = match.end()
    pieces.append(_PAN_CANDIDATE.sub(_mask_pan, text[start:]))
    return "".join(pieces)


@lru_cache(maxsize=4096)
def _is_sensitive_key(key: str) -> bool:
    # Keys are mostly the code's own few names; the bound keeps a gateway's odd keys in check.
    return _SENSITIVE_KEY.search(key) is not None


_PLAIN = frozenset({int, float, bool, type(None)})


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of `value` with sensitive keys blanked and card numbers masked, at any depth."""
    if key is not None and _is_sensitive_key(key):
        return REDACTED
    if type(value) in _PLAIN:
        return value  # before the Mapping check, an ABC check that costs more than all the rest
    if isinstance(value, str):
        return mask_card_numbers(_SECRETS.redact(value))
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def _redact_processor(_: Any, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn adds an ANSI-coloured copy of each message; it is noise in JSON.
    event_dict.pop("color_message", None)
    return {key: redact(value, key) for key, value in event_dict.items()}


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_processor,
    ]


_render_json = structlog.processors.JSONRenderer()


def _render(logger: Any, method_name: str, event_dict: EventDict) -> str:
    # Secrets once more over the whole line: a value that is not a string (an exception object,
    # bytes, a URL) is rendered by its repr, which the per-value redaction never saw.
    return _SECRETS.redact(str(_render_json(logger, method_name, event_dict)))


class _JSONFormatter(structlog.stdlib.ProcessorFormatter):
    def format(self, record: logging.LogRecord) -> str:
        logger, method_name = getattr(record, "_logger", None), getattr(record, "_name", None)
        if logger is None or not isinstance(method_name, str) or not isinstance(record.msg, dict):
            return super().format(record)
        # structlog's own events are complete already: rendered from a copy of the event, the
        # same line the base class writes, without the copy of the whole record it makes first.
        return _render(logger, method_name, dict(record.msg))


def json_formatter() -> logging.Formatter:
    return _JSONFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *_shared_processors()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _render],
    )


def _skip_unrendered_record_fields() -> None:
    """The standard library's own optimisation (Logging HOWTO, "Optimization"): every record
    otherwise walks the stack for its caller's file and line, and asks for the thread and
    process ids; no line this service renders shows any of them."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Route structlog and the standard library (uvicorn, SQLAlchemy) through one JSON renderer,
    redacting `secrets` (see `app.core.config.secret_values`) wherever they appear."""
    register_secrets(secrets)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace only our own handler, so configuring twice (tests, reloads) never doubles lines.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our middleware writes one access line per request, with the request id.
    logging.getLogger("uvicorn.access").disabled = True
    _skip_unrendered_record_fields()

    structlog.configure(
        processors=[
            # First: an event below the level is dropped before any work is done on it.
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _route_template(scope: Scope) -> str:
    """The matched route as a template (`/api/v1/netvalve/webhook-events/{event_id}`), so that
    ids never become label values; anything unmatched shares one label.

    Rebuilt from the path and its parameters: a route included through routers knows only its
    own part of the path."""
    if scope.get("route") is None:
        return "unmatched"
    params = {str(value): name for name, value in scope.get("path_params", {}).items()}
    segments = str(scope["path"]).split("/")
    return "/".join(f"{{{params[part]}}}" if part in params else part for part in segments)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_NAME = REQUEST_ID_HEADER.lower().encode()


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_NAME:
            return str(value.decode("latin-1"))
    return ""


def _with_request_id(
    headers: Iterable[tuple[bytes, bytes]], request_id: bytes
) -> list[tuple[bytes, bytes]]:
    """`headers` with X-Request-ID set to `request_id`, replacing any the app set."""
    kept = [pair for pair in headers if pair[0] != _REQUEST_ID_NAME]
    kept.append((_REQUEST_ID_NAME, request_id))
    return kept


class RequestContextMiddleware:
    """Gives each request an id (the caller's, if well-formed), logs one access line, and turns
    an unhandled exception into the standard 500 body, so no error escapes without the id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _incoming_request_id(scope)
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        encoded_id = request_id.encode()
        scope.setdefault("state", {})["request_id"] = request_id
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        started_at = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                message["headers"] = _with_request_id(message.get("headers", ()), encoded_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("http.unhandled_error", method=scope["method"], path=scope["path"])
            if response_started:
                raise
            response = error_response(
                500, "InternalServerError", "An unexpected error occurred.", request_id
            )
            await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started_at
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status_code,
                duration_ms=round(elapsed * 1000, 2),
            )
            metrics.HTTP_REQUEST_SECONDS.labels(
                scope["method"], _route_template(scope), str(status_code)
            ).observe(elapsed)
            structlog.contextvars.reset_contextvars(**tokens)
