"""Notifications to Medusa: what the ledger learnt without Medusa asking, told to Medusa.

Medusa acts on the answers to its own calls (POST /payment, /capture, /refund, /cancel). When the
ledger changes any other way (the sweep or `GET /status?refresh=true` settles a pending or unknown
sale, a proven NetValve webhook brings a late approval or an operation done in NetValve's portal),
Medusa would never hear of it: a cart whose payment settled late would never become an order.

1. Writing (`MedusaOutbox`): the code that changes the ledger in the background compares the
   payment before and after, inside its own transaction, and adds an outbox row there. The row
   exists exactly when the change does: a rolled-back change leaves no row, and no worker can see
   (let alone send) a row before its transaction commits. A direct answer to Medusa's own request
   writes none (`notify_medusa=False` in NetvalveService); an unknown or pending first answer
   that the request itself settles later is notified too, since Medusa may have stopped waiting.
   Without MEDUSA_WEBHOOK_URL no row is written: nobody would deliver it, and setting a URL
   later must not flood Medusa with stale news it has long since read through `GET /status`.
2. Delivering (`MedusaNotificationService.deliver_due`): a worker, in any number of processes,
   claims due rows with FOR UPDATE SKIP LOCKED and a lease, commits, and only then POSTs each one,
   with no transaction open, signed per Standard Webhooks (the same webhook-id on every attempt, a
   fresh timestamp and signature each time). A 2xx is `delivered`; anything else is retried with
   exponential backoff and jitter until MEDUSA_NOTIFY_MAX_ATTEMPTS, then `failed` (terminal) for
   an operator to replay.

A notification is a pointer, not a fact: the provider reads the payment's current state from
`GET /status` before Medusa acts, so a late, repeated or replayed notification is harmless.
"""

import asyncio
import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from app.core import metrics
from app.core.config import Settings
from app.core.cursor import decode_cursor, split_page
from app.core.errors import AppError
from app.core.logging import mask_card_numbers, redact_secrets
from app.core.money import from_minor_units
from app.db.session import transaction
from app.models.medusa_notification import (
    MedusaEventType,
    MedusaNotification,
    MedusaNotificationStatus,
)
from app.models.payment import Payment, PaymentState
from app.repositories.medusa_notification_repository import MedusaNotificationRepository
from app.schemas.medusa_notification import (
    MedusaNotificationData,
    MedusaNotificationPage,
    MedusaNotificationRequest,
    MedusaNotificationResponse,
    MedusaNotificationUpdate,
)

log = structlog.get_logger(__name__)

MAX_ERROR_LENGTH = 500
_RESPONSE_SNIPPET_CHARS = 200
# An error answer is read further than it is kept, and masked before it is cut, so that a card
# number or a secret across the cut is masked whole; what the read itself cut off at its end
# (up to the margin) is dropped, since it cannot be recognised to be masked.
_RESPONSE_READ_BYTES = 4096
_READ_CUT_MARGIN = 256
# The notification each ledger state announces; `pending` and `requires_payment` announce
# nothing by themselves (a refused charge is told apart by the caller, see `event_for`).
_EVENTS = {
    PaymentState.AUTHORIZED: MedusaEventType.AUTHORIZED,
    PaymentState.CAPTURED: MedusaEventType.CAPTURED,
    PaymentState.PARTIALLY_REFUNDED: MedusaEventType.REFUNDED,
    PaymentState.REFUNDED: MedusaEventType.REFUNDED,
    PaymentState.CANCELED: MedusaEventType.CANCELED,
}


class MedusaNotificationNotFound(AppError):
    """No notification to Medusa has that id."""

    status_code = 404
    message = "No notification to Medusa has that id."


# --- writing, in the ledger's transaction ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerMark:
    """What Medusa is told about, as it stood before a change."""

    state: PaymentState
    authorized_minor: int
    captured_minor: int
    refunded_minor: int

    @classmethod
    def of(cls, payment: Payment) -> "LedgerMark":
        return cls(
            payment.state, payment.authorized_minor, payment.captured_minor, payment.refunded_minor
        )


def event_for(
    payment: Payment, before: LedgerMark, *, charge_ended: bool = False
) -> MedusaEventType | None:
    """The notification that the change from `before` to the payment as it is now calls for.

    `charge_ended`: this change settled the payment's sale or authorization; left at
    `requires_payment`, it was declined (or NetValve never had it): `payment.failed`."""
    if payment.state is PaymentState.REQUIRES_PAYMENT:
        return MedusaEventType.FAILED if charge_ended else None
    if LedgerMark.of(payment) == before:
        return None
    return _EVENTS.get(payment.state)


def notification_body(
    payment: Payment, event: MedusaEventType, at: datetime
) -> MedusaNotificationRequest:
    """The body Medusa receives (contract section C): amounts in major units, as Medusa's."""
    amount_minor = {
        MedusaEventType.AUTHORIZED: payment.authorized_minor,
        MedusaEventType.CAPTURED: payment.captured_minor,
        MedusaEventType.REFUNDED: payment.refunded_minor,
    }.get(event, payment.amount_minor)
    return MedusaNotificationRequest(
        type=event,
        timestamp=at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        data=MedusaNotificationData(
            payment_id=payment.id,
            session_id=payment.payment_session_id,
            cart_id=payment.cart_id,
            state=payment.state,
            amount=format(from_minor_units(amount_minor, payment.currency), "f"),
            currency_code=payment.currency.lower(),
            transaction_id=payment.transaction_id,
        ),
    )


class MedusaOutbox:
    """Adds notifications to the caller's open ledger transaction; never commits itself."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.medusa_webhook_url is not None

    def note(
        self,
        session: AsyncSession,
        payment: Payment,
        before: LedgerMark,
        *,
        charge_ended: bool = False,
    ) -> MedusaNotification | None:
        """The notification for the change from `before`, added to `session`; None when the
        change is none Medusa is told of, or notifications are off."""
        if not self.enabled:
            return None
        event = event_for(payment, before, charge_ended=charge_ended)
        if event is None:
            return None
        now = datetime.now(UTC)
        notification = MedusaNotification(
            id=uuid.uuid4(),
            payment_id=payment.id,
            event_type=event,
            payload=notification_body(payment, event, now).model_dump(mode="json"),
            next_attempt_at=now,
        )
        MedusaNotificationRepository(session).add(notification)
        return notification


# --- delivering --------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _bounded(text: str) -> str:
    """Error text as stored and served to operators: no secret, no card number, bounded."""
    return mask_card_numbers(redact_secrets(text))[:MAX_ERROR_LENGTH]


@dataclass(frozen=True, slots=True)
class _Outcome:
    status_code: int | None
    error: str | None  # None: delivered

    @property
    def result(self) -> str:
        if self.error is None:
            return "delivered"
        return "unreachable" if self.status_code is None else "rejected"


class MedusaNotificationService:
    """Delivers the outbox to MEDUSA_WEBHOOK_URL (`http` is the worker's own client), and lets
    operators list, read and replay notifications."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._http = http
        timeout = settings.medusa_notify_timeout_seconds
        # Longer than a few sends, so that a claim is never taken over while it is being sent.
        self.lease = timedelta(seconds=max(60.0, 3 * timeout))
        self._timeout = timedelta(seconds=timeout)

    async def deliver_due(self, limit: int = 20, stop: asyncio.Event | None = None) -> int:
        """Claim due notifications and send them one by one; how many were sent.

        The claim is committed before anything is sent: another worker sees the lease, and
        nothing is sent while a transaction is open. Ones left when `stop` is set, or when the
        lease would run out before a send could finish, are handed back at once."""
        now = _now()
        lease_until = now + self.lease
        async with transaction(self._sessionmaker) as session:
            due = await MedusaNotificationRepository(session).claim_due(now, lease_until, limit)
        for index, notification in enumerate(due):
            if (stop is not None and stop.is_set()) or _now() + self._timeout >= lease_until:
                await self._release([row.id for row in due[index:]], lease_until)
                return index
            try:
                await self._deliver(notification, lease_until)
            except asyncio.CancelledError:
                # Cut short past the grace period: the one in hand too (Medusa may see it twice,
                # which a notification allows: it is a pointer to GET /status).
                await self._release([row.id for row in due[index:]], lease_until)
                raise
        return len(due)

    async def _deliver(self, notification: MedusaNotification, lease_until: datetime) -> None:
        outcome = await self._send(notification)
        metrics.MEDUSA_NOTIFY_ATTEMPTS.labels(outcome.result).inc()
        now = _now()
        changes = MedusaNotificationUpdate(last_status_code=outcome.status_code)
        event = notification.event_type.value
        fields = {
            "notification_id": str(notification.id),
            "payment_id": str(notification.payment_id),
            "type": event,
            "attempts": notification.attempts,
            "status_code": outcome.status_code,
        }
        if outcome.error is None:
            changes.status = MedusaNotificationStatus.DELIVERED
            changes.delivered_at = now
            changes.last_error = None
        elif notification.attempts >= self._settings.medusa_notify_max_attempts:
            changes.status = MedusaNotificationStatus.FAILED
            changes.last_error = outcome.error
        else:
            changes.next_attempt_at = now + self.backoff(notification.attempts)
            changes.last_error = outcome.error
        async with transaction(self._sessionmaker) as session:
            recorded = await MedusaNotificationRepository(session).record(
                notification.id, lease_until, changes
            )
        if not recorded:
            # Our lease ran out mid-send and another worker has it: its result stands.
            log.warning("medusa.notification_lease_lost", **fields)
        elif changes.status is MedusaNotificationStatus.DELIVERED:
            metrics.MEDUSA_NOTIFY_DELIVERED.labels(event).inc()
            log.info("medusa.notification_delivered", **fields)
        elif changes.status is MedusaNotificationStatus.FAILED:
            metrics.MEDUSA_NOTIFY_FAILED.labels(event).inc()
            log.error("medusa.notification_failed", error=outcome.error, **fields)
        else:
            log.warning(
                "medusa.notification_retry",
                error=outcome.error,
                next_attempt_at=changes.next_attempt_at.isoformat()
                if changes.next_attempt_at
                else None,
                **fields,
            )

    async def _send(self, notification: MedusaNotification) -> _Outcome:
        """One POST, signed afresh: same webhook-id, new timestamp and signature. Nothing of
        the headers is ever logged or stored (the signature would let anyone replay it within
        its five minutes).

        The whole exchange ends within MEDUSA_NOTIFY_TIMEOUT_SECONDS: httpx's timeouts are per
        read, so an answer that trickles in would otherwise hold the worker (and outlive the
        lease that `deliver_due` counts on)."""
        if self._http is None or self._settings.medusa_webhook_url is None:
            raise RuntimeError("delivering needs MEDUSA_WEBHOOK_URL and an HTTP client")
        secret = self._settings.medusa_webhook_secret
        if secret is None:  # pragma: no cover - the settings refuse a URL without a secret
            raise RuntimeError("MEDUSA_WEBHOOK_SECRET is not set")
        body = json.dumps(notification.payload, separators=(",", ":"))
        sent_at = _now().replace(microsecond=0)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": notification.webhook_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(secret.get_secret_value()).sign(
                notification.webhook_id, sent_at, body
            ),
        }
        url = str(self._settings.medusa_webhook_url)
        seconds = self._timeout.total_seconds()
        try:
            async with (
                asyncio.timeout(seconds),
                self._http.stream("POST", url, content=body.encode(), headers=headers) as response,
            ):
                if response.is_success:
                    return _Outcome(response.status_code, None)
                read, whole = await _first_bytes(response, _RESPONSE_READ_BYTES)
        except TimeoutError:
            return _Outcome(None, f"TimeoutError: no whole answer within {seconds:g} s")
        except Exception as error:  # a bug must not retry a row forever: it is an attempt too
            detail = str(error).strip()
            return _Outcome(None, _bounded(f"{type(error).__name__}: {detail}".rstrip(": ")))
        text = _snippet(read, whole=whole)
        return _Outcome(
            response.status_code, _bounded(f"HTTP {response.status_code}: {text}".rstrip(": "))
        )

    def backoff(self, attempts: int) -> timedelta:
        """Delay before the next attempt after `attempts` failed ones: doubling from
        MEDUSA_NOTIFY_RETRY_BASE_SECONDS up to MEDUSA_NOTIFY_MAX_BACKOFF_SECONDS, with +/- 20 %
        jitter so that many notifications failed together do not come back together."""
        settings = self._settings
        delay = min(
            settings.medusa_notify_retry_base_seconds * 2 ** min(max(attempts - 1, 0), 30),
            settings.medusa_notify_max_backoff_seconds,
        )
        return timedelta(seconds=delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter

    async def _release(self, ids: list[uuid.UUID], lease_until: datetime) -> None:
        try:
            async with asyncio.timeout(5), transaction(self._sessionmaker) as session:
                released = await MedusaNotificationRepository(session).release(ids, lease_until)
        except (TimeoutError, OSError, DBAPIError, InterfaceError, OperationalError):
            # Due again once the lease ends; nothing is lost, only delayed.
            log.warning("medusa.notifier_release_failed", notifications=len(ids))
            return
        log.info("medusa.notifier_released", notifications=released)

    # --- operator API ------------------------------------------------------------------------

    async def list(
        self,
        *,
        status: MedusaNotificationStatus | None,
        event_type: MedusaEventType | None,
        payment_id: uuid.UUID | None,
        cursor: str | None,
        limit: int,
    ) -> MedusaNotificationPage:
        after = decode_cursor(cursor) if cursor else None
        async with transaction(self._sessionmaker) as session:
            rows = await MedusaNotificationRepository(session).list(
                status=status,
                event_type=event_type,
                payment_id=payment_id,
                after=after,
                limit=limit + 1,
            )
        page, next_cursor = split_page(rows, limit, lambda row: row.created_at, lambda row: row.id)
        return MedusaNotificationPage(
            items=[MedusaNotificationResponse.model_validate(row) for row in page],
            next_cursor=next_cursor,
        )

    async def get(self, notification_id: uuid.UUID) -> MedusaNotificationResponse:
        async with transaction(self._sessionmaker) as session:
            row = await MedusaNotificationRepository(session).get(notification_id)
            if row is None:
                raise MedusaNotificationNotFound
            return MedusaNotificationResponse.model_validate(row)

    async def replay(self, notification_id: uuid.UUID) -> MedusaNotificationResponse:
        """Send it again as soon as a worker can, with a fresh set of attempts (same id, same
        body). Idempotent; one a worker is sending right now is left to finish."""
        now = _now()
        async with transaction(self._sessionmaker) as session:
            repository = MedusaNotificationRepository(session)
            row = await repository.get(notification_id)
            if row is None:
                raise MedusaNotificationNotFound
            leased = row.locked_until is not None and row.locked_until > now
            if not leased:
                previous = row.status
                row.status = MedusaNotificationStatus.PENDING
                row.attempts = 0
                row.next_attempt_at = now
                row.locked_until = None
                row.delivered_at = None
                await session.flush()  # updated_at comes back with the UPDATE (eager defaults)
                log.info(
                    "medusa.notification_replayed",
                    notification_id=str(row.id),
                    payment_id=str(row.payment_id),
                    previous_status=previous.value,
                )
            return MedusaNotificationResponse.model_validate(row)


async def _first_bytes(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of a response body (an error page can be any size), and whether
    they are the whole body."""
    read = b""
    async for chunk in response.aiter_bytes():
        read += chunk
        if len(read) >= limit:
            return read[:limit], False
    return read, True


def _snippet(read: bytes, *, whole: bool) -> str:
    """The start of an error answer as stored: redacted and masked before it is cut, so that
    no part of a secret or card number the cut runs through is kept."""
    text = read.decode("utf-8", errors="replace")
    if not whole:
        text = text[:-_READ_CUT_MARGIN]
    return _bounded(text).strip()[:_RESPONSE_SNIPPET_CHARS]
