"""`GET /metrics`: Prometheus text format, for an admin or metrics API key.

The counters and histograms are this process's; the gauges about stored state (unsettled
gateway operations, webhook events, extra charges and notifications to Medusa by status) are
read from the database at each scrape, with four grouped queries on indexed columns.
"""

from datetime import UTC, datetime

import structlog
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.auth import AUTH_ERRORS, MetricsPrincipal
from app.api.deps import ResourcesDep
from app.core import metrics
from app.core.state import Resources
from app.models.extra_charge import ExtraChargeStatus
from app.models.medusa_notification import MedusaNotificationStatus
from app.models.payment_attempt import AttemptOutcome
from app.models.webhook_event import WebhookEventStatus
from app.repositories.extra_charge_repository import ExtraChargeRepository
from app.repositories.medusa_notification_repository import MedusaNotificationRepository
from app.repositories.payment_repository import PaymentRepository
from app.repositories.webhook_event_repository import WebhookEventRepository

log = structlog.get_logger(__name__)
router = APIRouter(tags=["operations"])

UNSETTLED = (AttemptOutcome.SENT, AttemptOutcome.UNKNOWN, AttemptOutcome.PENDING)


async def refresh_database_gauges(resources: Resources) -> None:
    try:
        async with resources.sessionmaker() as session:
            unsettled = await PaymentRepository(session).unsettled_attempts(datetime.now(UTC))
            events = await WebhookEventRepository(session).count_by_status()
            extra = await ExtraChargeRepository(session).count_by_status()
            notifications = await MedusaNotificationRepository(session).count_by_status()
    except Exception as error:
        log.warning("metrics.database_unavailable", error=type(error).__name__)
        metrics.DATABASE_UP.set(0)
        return
    metrics.DATABASE_UP.set(1)
    for outcome in UNSETTLED:
        count, oldest = unsettled.get(outcome, (0, 0.0))
        metrics.UNSETTLED_ATTEMPTS.labels(outcome.value).set(count)
        metrics.UNSETTLED_OLDEST_SECONDS.labels(outcome.value).set(oldest)
    for status in WebhookEventStatus:
        metrics.WEBHOOK_EVENTS.labels(status.value).set(events.get(status, 0))
    for charge_status in ExtraChargeStatus:
        metrics.EXTRA_CHARGES_HELD.labels(charge_status.value).set(
            extra.get(charge_status, (0, 0))[0]
        )
    now = datetime.now(UTC)
    for notification_status in MedusaNotificationStatus:
        waiting, since = notifications.get(notification_status, (0, None))
        metrics.MEDUSA_NOTIFICATIONS.labels(notification_status.value).set(waiting)
        if notification_status is MedusaNotificationStatus.PENDING:
            age = (now - since).total_seconds() if since is not None else 0.0
            metrics.MEDUSA_NOTIFY_OLDEST_PENDING_SECONDS.set(max(age, 0.0))


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **AUTH_ERRORS,
    },
)
async def get_metrics(_: MetricsPrincipal, resources: ResourcesDep) -> Response:
    """Service metrics for Prometheus (Authorization: Bearer <admin or metrics key>)."""
    await refresh_database_gauges(resources)
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
