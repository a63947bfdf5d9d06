"""Prometheus metrics: what the service does (counters and histograms, per process) and what the
database holds (gauges, read when /metrics is scraped).

The per-process series add up across replicas (`sum by`); the database gauges are the same in
every replica, so aggregate those with `max by`. All names start with `netvalve_gateway_`.

Under `uvicorn --workers N` the workers share a directory that `app/__init__.py` sets up before
prometheus_client is imported (or PROMETHEUS_MULTIPROC_DIR, when the operator sets one): each
worker writes its values there and any worker's /metrics answers for all of them. Counters and
histograms add up across workers; the database gauges are the last value read (`mostrecent`,
`max`), never a sum.
"""

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from app import MULTIPROCESS_ENV

MULTIPROCESS_DIR = os.environ.get(MULTIPROCESS_ENV)
if MULTIPROCESS_DIR:
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)

REGISTRY = CollectorRegistry(auto_describe=True)
"""The service's own registry: no default process collectors, and nothing another library adds."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LAG_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21_600.0)

HTTP_REQUEST_SECONDS = Histogram(
    "netvalve_gateway_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and status code.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
NETVALVE_CALL_SECONDS = Histogram(
    "netvalve_gateway_netvalve_request_duration_seconds",
    "Time of each call to NetValve, by operation and outcome "
    "(Approved, Pending, Declined, ValidationFailed, AuthenticationFailed, UnknownOutcome, "
    "Unavailable).",
    ["operation", "outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
UNSETTLED_ATTEMPTS = Gauge(
    "netvalve_gateway_unsettled_attempts",
    "Gateway operations whose outcome is not known yet, by outcome: sent (in flight, or the "
    "process died during the call), unknown (timeout or connection lost), pending (NetValve "
    "said pending).",
    ["outcome"],
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
UNSETTLED_OLDEST_SECONDS = Gauge(
    "netvalve_gateway_unsettled_attempt_oldest_age_seconds",
    "Age of the oldest unsettled gateway operation, by outcome; 0 when there is none.",
    ["outcome"],
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
WEBHOOK_EVENTS = Gauge(
    "netvalve_gateway_webhook_events",
    "Stored webhook events (not soft-deleted), by status.",
    ["status"],
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "netvalve_gateway_webhook_deliveries_total",
    "Webhook deliveries answered by intake, by result: stored, duplicate, rejected (stored "
    "for inspection, 400), unavailable (503, NetValve retries).",
    ["result"],
    registry=REGISTRY,
)
WEBHOOK_PROCESSED = Counter(
    "netvalve_gateway_webhook_processing_total",
    "Processing passes over stored events, by the status each pass left the event in.",
    ["status"],
    registry=REGISTRY,
)
WEBHOOK_LAG_SECONDS = Histogram(
    "netvalve_gateway_webhook_intake_to_processed_seconds",
    "From storing an event to finishing it (processed or ignored).",
    ["status"],
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
RECONCILE_SWEEPS = Counter(
    "netvalve_gateway_reconcile_sweeps_total",
    "Reconciliation sweeps run, by result (ok, failed).",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_SETTLED = Counter(
    "netvalve_gateway_reconcile_settled_total",
    "Payments the sweep settled with NetValve's answer.",
    registry=REGISTRY,
)
RECONCILE_FAILURES = Counter(
    "netvalve_gateway_reconcile_failures_total",
    "Payments whose settlement failed with an error in a sweep (backed off, tried again).",
    registry=REGISTRY,
)
WEBHOOK_UNPROVEN = Counter(
    "netvalve_gateway_webhook_unproven_total",
    "Approved webhook events ignored because NetValve's own record did not prove them, by "
    "what did not match (not_found, type, status, amount, currency, order, payment, ...).",
    ["reason"],
    registry=REGISTRY,
)
EXTRA_CHARGES = Counter(
    "netvalve_gateway_extra_charges_total",
    "Charges NetValve approved beyond a payment's own, by what happened: found, reversed, "
    "reverse_failed.",
    ["result"],
    registry=REGISTRY,
)
EXTRA_CHARGES_HELD = Gauge(
    "netvalve_gateway_extra_charges_held",
    "Extra charges by status (open and reverse_failed are money the shopper paid that Medusa "
    "does not show).",
    ["status"],
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
RECONCILE_LAST_SWEEP = Gauge(
    "netvalve_gateway_reconcile_last_sweep_timestamp_seconds",
    "Unix time the last sweep finished without error; alert when it falls behind.",
    multiprocess_mode="max",
    registry=REGISTRY,
)
MEDUSA_NOTIFY_ATTEMPTS = Counter(
    "netvalve_gateway_medusa_notification_attempts_total",
    "Deliveries of notifications to Medusa tried, by result: delivered (2xx), rejected (any "
    "other HTTP status), unreachable (no answer: refused, timed out, reset).",
    ["result"],
    registry=REGISTRY,
)
MEDUSA_NOTIFY_DELIVERED = Counter(
    "netvalve_gateway_medusa_notifications_delivered_total",
    "Notifications Medusa accepted (2xx), by type (payment.captured, ...).",
    ["type"],
    registry=REGISTRY,
)
MEDUSA_NOTIFY_FAILED = Counter(
    "netvalve_gateway_medusa_notifications_failed_total",
    "Notifications given up after MEDUSA_NOTIFY_MAX_ATTEMPTS tries (terminal `failed`: an "
    "operator replays them), by type.",
    ["type"],
    registry=REGISTRY,
)
MEDUSA_NOTIFICATIONS = Gauge(
    "netvalve_gateway_medusa_notifications",
    "Notifications to Medusa in the outbox, by status (pending, delivered, failed).",
    ["status"],
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
MEDUSA_NOTIFY_OLDEST_PENDING_SECONDS = Gauge(
    "netvalve_gateway_medusa_notification_oldest_pending_age_seconds",
    "Age of the oldest notification not delivered yet (pending); 0 when there is none.",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
DATABASE_UP = Gauge(
    "netvalve_gateway_metrics_database_up",
    "1 if the database gauges were read at this scrape, 0 if the database did not answer "
    "(those gauges then keep their last values).",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)


def render() -> bytes:
    """The exposition text: this process's registry, or every worker's under multiprocess."""
    if MULTIPROCESS_DIR:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
