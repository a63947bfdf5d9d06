"""NetValve webhooks: a durable inbox, then ordered-safe processing into the ledger.

Intake stores the raw body before anything else and answers 200 only once the row is committed
(503 if the database cannot take it, so NetValve retries). NetValve sends no event id, so the
dedup key is derived from the payload; a unique (source, dedup_key) pair makes a redelivery a
no-op insert. Processing happens outside the request, in a worker that claims due rows with
FOR UPDATE SKIP LOCKED, so several workers or replicas never process one event twice at once;
and every ledger change it makes is idempotent, so a retried event never counts twice.
"""

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import chain
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.netvalve import as_decimal, as_int
from app.core import metrics
from app.core.cards import id_values, mask_pans, mask_pans_in_text
from app.core.config import Settings
from app.core.cursor import decode_cursor, split_page
from app.core.errors import AppError
from app.core.logging import REDACTED, redact, redact_secrets
from app.db.errors import is_database_down
from app.db.session import transaction
from app.models.payment import Operation
from app.models.webhook_event import WebhookEvent, WebhookEventStatus
from app.repositories.webhook_event_repository import WebhookEventRepository
from app.schemas.webhook_event import (
    WebhookEventDeleted,
    WebhookEventPage,
    WebhookEventResponse,
    WebhookEventUpdate,
    WebhookReceipt,
)
from app.services.netvalve.events import EventData, GatewayEventService

log = structlog.get_logger(__name__)

SOURCE = "netvalve"
LEASE = timedelta(seconds=60)
# Each of NetValve's 19 event names: the operation it reports on and how it ended. REBILL
# events concern rebills, which this service never makes: stored, then ignored.
EVENTS: dict[str, tuple[Operation | None, str]] = {
    "PURCHASED": (Operation.SALE, "approved"),
    "PURCHASE_FAILED": (Operation.SALE, "failed"),
    "PURCHASE_PENDING": (Operation.SALE, "pending"),
    "AUTHORISED": (Operation.AUTHORIZE, "approved"),
    "AUTHORISATION_FAILED": (Operation.AUTHORIZE, "failed"),
    "AUTHORISATION_PENDING": (Operation.AUTHORIZE, "pending"),
    "CAPTURED": (Operation.CAPTURE, "approved"),
    "CAPTURE_FAILED": (Operation.CAPTURE, "failed"),
    "CAPTURE_PENDING": (Operation.CAPTURE, "pending"),
    "CANCELLED": (Operation.CANCEL, "approved"),
    "CANCELLATION_FAILED": (Operation.CANCEL, "failed"),
    "CANCELLATION_PENDING": (Operation.CANCEL, "pending"),
    "REFUNDED": (Operation.REFUND, "approved"),
    "REFUND_FAILED": (Operation.REFUND, "failed"),
    "REFUND_PENDING": (Operation.REFUND, "pending"),
    "REBILLED": (None, "approved"),
    "REBIL_FAILED": (None, "failed"),  # sic: NetValve's spelling
    "REBILL_PENDING": (None, "pending"),
    "CHARGEBACK": (None, "chargeback"),
}


class WebhookStoreUnavailable(AppError):
    """The event could not be stored; NetValve will retry the delivery."""

    status_code = 503
    message = "The webhook could not be stored; retry later."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "30"})


class WebhookMalformed(AppError):
    """The body is not JSON of NetValve's `{eventName, data}` shape; stored as rejected."""

    status_code = 400


class WebhookEventNotFound(AppError):
    """No webhook event has that id."""

    status_code = 404
    message = "No webhook event has that id."


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    event_name: str
    data: dict[str, Any]


def parse(raw: bytes) -> ParsedEvent | str:
    """The event, or why it is not one."""
    try:
        body = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "the body is not valid JSON"
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    name, data = body.get("eventName"), body.get("data")
    if not isinstance(name, str) or name not in EVENTS:
        return "unknown or missing eventName"
    if not isinstance(data, dict):
        return "data is missing or not an object"
    unstorable = _unstorable(data)
    if unstorable:
        # PostgreSQL's jsonb cannot hold these: storing them as sent would be a 500, and
        # NetValve would redeliver the event forever. Refused, and kept as raw bytes.
        return unstorable
    return ParsedEvent(name, data)


MAX_DEPTH = 16  # NetValve's events are two levels deep


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity, -Infinity


def _unstorable(value: Any, depth: int = 0) -> str | None:
    """Why `value` cannot be stored as jsonb, or None. Keys are checked as text, each before its
    value, and the first reason found is the one given."""
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        return _unstorable_text(value)
    items: Iterable[Any]
    if isinstance(value, dict):
        items = chain.from_iterable(value.items())
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        # Text below the depth limit is checked here: a call per key and value was most of
        # the cost of intake's parsing.
        if isinstance(item, str) and depth < MAX_DEPTH:
            found = _unstorable_text(item)
        else:
            found = _unstorable(item, depth + 1)
        if found:
            return found
    return None


def _unstorable_text(value: str) -> str | None:
    if "\x00" in value:
        return "a string holds a NUL character"
    if not value.isascii() and any("\ud800" <= char <= "\udfff" for char in value):
        return "a string holds a lone surrogate"
    return None


def dedup_key(event: ParsedEvent) -> str:
    """What identifies one event across redeliveries: NetValve sends no id of its own.

    Timestamps are left out on purpose: a redelivery may be stamped anew.
    """
    data = event.data
    parts = [
        event.event_name,
        data.get("transactionId"),
        data.get("traceId"),
        data.get("responseCode"),
        str(data.get("amount")),
    ]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _event_row(raw: bytes, event: ParsedEvent) -> dict[str, Any]:
    """The inbox row of an event. A card number is never stored: masked as NetValve masks it,
    in the raw bytes too."""
    data = mask_pans(event.data)
    return {
        "raw_body": _masked_raw(raw, id_values(event.data)),
        "dedup_key": dedup_key(event),
        "event_name": event.event_name,
        "transaction_id": as_int(event.data.get("transactionId")),
        "client_order_id": str(data.get("clientOrderId") or "")[:100] or None,
        "payload": _json_safe({"eventName": event.event_name, "data": data}),
    }


def _rejected_row(raw: bytes, reason: str) -> dict[str, Any]:
    """The inbox row of a body that is not an event, kept for inspection, card numbers masked."""
    masked = _masked_raw(raw, set())
    return {
        "raw_body": masked,
        "dedup_key": hashlib.sha256(masked).hexdigest(),
        "status": WebhookEventStatus.REJECTED,
        "last_error": reason,
    }


def _masked_raw(raw: bytes, keep: set[str]) -> bytes:
    """`raw` with card numbers masked; every other byte as sent, even if not UTF-8."""
    text = raw.decode("utf-8", errors="surrogateescape")
    return mask_pans_in_text(text, keep).encode("utf-8", errors="surrogateescape")


def _json_safe(value: Any) -> Any:
    """A copy of the parsed JSON `value` with its Decimals as text, as `json.dumps(value,
    default=str)` would write them, without writing and reading the whole body again."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return str(value) if isinstance(value, Decimal) else value


class WebhookService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        events: GatewayEventService,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._events = events
        self._settings = settings

    # --- intake ------------------------------------------------------------------------------

    async def receive(self, raw: bytes, headers: dict[str, str]) -> WebhookReceipt:
        parsed = parse(raw)
        row = _rejected_row(raw, parsed) if isinstance(parsed, str) else _event_row(raw, parsed)
        event_id = await self._store({"source": SOURCE, **row, "headers": self._headers(headers)})
        if isinstance(parsed, str):
            metrics.WEBHOOK_DELIVERIES.labels("rejected").inc()
            raise WebhookMalformed(f"Rejected and stored for inspection: {parsed}.")
        metrics.WEBHOOK_DELIVERIES.labels("duplicate" if event_id is None else "stored").inc()
        log.info(
            "webhook.received",
            event_name=parsed.event_name,
            duplicate=event_id is None,
            transaction_id=row["transaction_id"],
        )
        return WebhookReceipt(status="duplicate" if event_id is None else "stored", id=event_id)

    def _headers(self, headers: dict[str, str]) -> dict[str, str]:
        auth_header = (self._settings.netvalve_webhook_auth_header or "").lower()
        return {
            name: REDACTED if name.lower() == auth_header else str(redact(value, name))
            for name, value in headers.items()
        }

    async def _store(self, values: dict[str, Any]) -> uuid.UUID | None:
        try:
            async with transaction(self._sessionmaker) as session:
                return await WebhookEventRepository(session).insert_new(values)
        except Exception as error:
            if is_database_down(error):
                log.error("webhook.store_unavailable", error=type(error).__name__)
                metrics.WEBHOOK_DELIVERIES.labels("unavailable").inc()
                raise WebhookStoreUnavailable from error
            raise

    # --- processing --------------------------------------------------------------------------

    async def process_due(self, limit: int = 50, stop: asyncio.Event | None = None) -> int:
        """Claim due events and process them one by one; the number processed.

        When `stop` is set, processing ends after the event in hand, and the rest of the claim
        is handed back at once (not left leased), so no event waits on a worker that is gone."""
        now = datetime.now(UTC)
        async with transaction(self._sessionmaker) as session:
            due = await WebhookEventRepository(session).claim_due(now, LEASE, limit)
        for index, event_id in enumerate(due):
            if stop is not None and stop.is_set():
                await self._release(due[index:], now + LEASE)
                return index
            try:
                await self.process(event_id)
            except asyncio.CancelledError:
                # Cut short past the grace period: hand everything back, the event in hand too
                # (applying an event is idempotent, so a second pass cannot count it twice).
                await self._release(due[index:], now + LEASE)
                raise
        return len(due)

    async def _release(self, event_ids: list[uuid.UUID], lease_until: datetime) -> None:
        try:
            async with asyncio.timeout(5), transaction(self._sessionmaker) as session:
                released = await WebhookEventRepository(session).release(event_ids, lease_until)
        except (TimeoutError, OSError, DBAPIError, InterfaceError, OperationalError):
            # They come due again when the lease ends; nothing is lost, only delayed.
            log.warning("webhook.release_failed", events=len(event_ids))
            return
        log.info("webhook.worker_released", events=released)

    async def process(self, event_id: uuid.UUID) -> WebhookEvent:
        """Apply one stored event to the ledger, through the same idempotent path every time."""
        async with transaction(self._sessionmaker) as session:
            event = await WebhookEventRepository(session).get(event_id)
        if event is None:
            raise WebhookEventNotFound
        try:
            status, error, payment_id = await self._apply(event)
        except Exception as exc:
            log.exception("webhook.processing_failed", event_id=str(event_id))
            status, error, payment_id = WebhookEventStatus.FAILED, repr(exc)[:500], None
        return await self._finish(event, status, error, payment_id)

    async def _apply(
        self, event: WebhookEvent
    ) -> tuple[WebhookEventStatus, str | None, uuid.UUID | None]:
        if event.payload is None or event.event_name not in EVENTS:
            return WebhookEventStatus.REJECTED, "not a NetValve event", None
        operation, outcome = EVENTS[event.event_name]
        if operation is None and outcome != "chargeback":
            return WebhookEventStatus.IGNORED, "rebills are not made by this service", None
        data: dict[str, Any] = event.payload["data"]
        result = await self._events.apply(operation, outcome, event_data(data))
        exhausted = event.attempts >= self._settings.webhook_max_attempts
        if result.result == "unmatched":
            # It may have arrived before our own commit: try again later, then give up loudly.
            if exhausted:
                return WebhookEventStatus.UNMATCHED, "no payment matches after all retries", None
            return WebhookEventStatus.PENDING_MATCH, "no payment matches yet", None
        if result.result == "retry":
            return WebhookEventStatus.FAILED, f"{result.reason}; will retry", result.payment_id
        if result.result == "ignored":
            return WebhookEventStatus.IGNORED, result.reason, result.payment_id
        return WebhookEventStatus.PROCESSED, None, result.payment_id

    async def _finish(
        self,
        event: WebhookEvent,
        status: WebhookEventStatus,
        error: str | None,
        payment_id: uuid.UUID | None,
    ) -> WebhookEvent:
        now = datetime.now(UTC)
        if (
            status is WebhookEventStatus.FAILED
            and event.attempts >= self._settings.webhook_max_attempts
        ):
            # Bounded: an event that cannot be applied after every try stops retrying and waits
            # for an operator (requeue or resolve through the operator API), counted by status.
            status, error = (
                WebhookEventStatus.EXHAUSTED,
                f"gave up after {event.attempts} tries: {error}",
            )
            log.error("webhook.exhausted", event_id=str(event.id), error=error)
        retry = status in (WebhookEventStatus.PENDING_MATCH, WebhookEventStatus.FAILED)
        backoff = self._settings.webhook_retry_base_seconds * 2 ** max(event.attempts - 1, 0)
        async with transaction(self._sessionmaker) as session:
            current = await WebhookEventRepository(session).get(event.id)
            if current is None:
                raise WebhookEventNotFound
            current.status = status
            # Stored and served to operators: never a card number or a secret of ours. The
            # event's own ids (its transactionId, quoted in most reasons) are kept whole, as in
            # its payload: masked, NetValve's id would no longer name the transaction.
            keep = id_values(event.payload) if event.payload else set()
            current.last_error = redact_secrets(mask_pans_in_text(error, keep)) if error else error
            current.payment_id = payment_id or current.payment_id
            current.next_attempt_at = now + timedelta(seconds=min(backoff, 3600)) if retry else None
            if status in (WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED):
                current.processed_at = now
            await session.flush()  # updated_at comes back with the UPDATE (eager defaults)
        log.info("webhook.processed", event_id=str(event.id), status=status.value, error=error)
        metrics.WEBHOOK_PROCESSED.labels(status.value).inc()
        if current.processed_at is not None:
            lag = (current.processed_at - current.received_at).total_seconds()
            metrics.WEBHOOK_LAG_SECONDS.labels(status.value).observe(max(lag, 0.0))
        return current

    # --- operator API ------------------------------------------------------------------------

    async def list(
        self,
        *,
        status: WebhookEventStatus | None,
        event_name: str | None,
        transaction_id: int | None,
        received_from: datetime | None,
        received_to: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> WebhookEventPage:
        after = decode_cursor(cursor) if cursor else None
        async with transaction(self._sessionmaker) as session:
            events = await WebhookEventRepository(session).list(
                status=status,
                event_name=event_name,
                transaction_id=transaction_id,
                received_from=received_from,
                received_to=received_to,
                after=after,
                limit=limit + 1,
            )
        page, next_cursor = split_page(
            events, limit, lambda event: event.received_at, lambda event: event.id
        )
        return WebhookEventPage(
            items=[WebhookEventResponse.model_validate(event) for event in page],
            next_cursor=next_cursor,
        )

    async def get(self, event_id: uuid.UUID) -> WebhookEventResponse:
        async with transaction(self._sessionmaker) as session:
            event = await WebhookEventRepository(session).get(event_id)
            if event is None:
                raise WebhookEventNotFound
            return WebhookEventResponse.model_validate(event)

    async def update(
        self, event_id: uuid.UUID, changes: WebhookEventUpdate
    ) -> WebhookEventResponse:
        async with transaction(self._sessionmaker) as session:
            event = await WebhookEventRepository(session).get(event_id)
            if event is None:
                raise WebhookEventNotFound
            if "notes" in changes.model_fields_set:
                event.notes = changes.notes
            if changes.status == "received":
                event.status = WebhookEventStatus.RECEIVED
                event.next_attempt_at = None
                event.attempts = 0
            elif changes.status == "ignored":
                # An operator resolved it: it is never retried, and the note says why.
                event.status = WebhookEventStatus.IGNORED
                event.next_attempt_at = None
                event.processed_at = event.processed_at or datetime.now(UTC)
            await session.flush()
            await session.refresh(event)
            return WebhookEventResponse.model_validate(event)

    async def delete(self, event_id: uuid.UUID) -> WebhookEventDeleted:
        async with transaction(self._sessionmaker) as session:
            event = await WebhookEventRepository(session).get(event_id)
            if event is None:
                raise WebhookEventNotFound
            event.deleted_at = datetime.now(UTC)
            return WebhookEventDeleted(id=event.id, deleted_at=event.deleted_at)

    async def replay(self, event_id: uuid.UUID) -> WebhookEventResponse:
        return WebhookEventResponse.model_validate(await self.process(event_id))


def event_data(data: dict[str, Any]) -> EventData:
    """What a stored event's `data` says about its transaction."""
    amount = data.get("amount")
    if isinstance(amount, int | float) and not isinstance(amount, bool):
        # Stored payloads hold amounts as JSON numbers; read them back exactly.
        amount = Decimal(str(amount))
    # A Decimal already, or not a number: the proof refuses what it cannot read.
    readable = as_decimal(amount)
    return EventData(
        transaction_id=as_int(data.get("transactionId")),
        client_order_id=_text(data.get("clientOrderId")),
        amount=readable if readable is not None and readable > 0 else None,
        currency=_text(data.get("currency")),
    )


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None
