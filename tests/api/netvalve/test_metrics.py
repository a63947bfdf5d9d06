"""GET /metrics: the series an operator reads, moving as a payment and a webhook go through.

Counters and histograms live in one registry per process, so every assertion is on the change
between two scrapes, never on an absolute count.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.fixtures.api import ADMIN_KEY, STOREFRONT_KEY, Api, ApiFactory
from tests.fixtures.netvalve import build_webhook_event
from tests.fixtures.webhooks import WEBHOOK_SETTINGS, post_webhook, webhook_service_of

pytestmark = pytest.mark.asyncio

METRICS_KEY = "mtr_test_5c1e7a9b3d2f4e6a8c0b1d3f"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(api: Api, key: str = METRICS_KEY) -> Samples:
    response = await api.http.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((f"netvalve_gateway_{name}", frozenset(labels.items())), 0.0)


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


@pytest_asyncio.fixture(autouse=True)
async def empty_inbox(medusa_writer: asyncpg.Connection) -> AsyncIterator[None]:
    """The webhook gauges count every stored event, so each test starts and ends with none."""
    await medusa_writer.execute("DELETE FROM webhook_events")
    yield
    await medusa_writer.execute("DELETE FROM webhook_events")


@pytest_asyncio.fixture
async def api(api_factory: ApiFactory) -> Api:
    built: Api = await api_factory(metrics_api_keys=[SecretStr(METRICS_KEY)], **WEBHOOK_SETTINGS)
    return built


async def test_a_payment_moves_the_request_and_gateway_series(api: Api):
    before = await scrape(api)

    paid = await api.pay(await api.medusa_session())

    assert paid.status_code == 200, paid.text
    after = await scrape(api)
    route = {"method": "POST", "route": "/api/v1/netvalve/payment", "status": "200"}
    count = "http_request_duration_seconds_count"
    assert value(after, count, **route) == value(before, count, **route) + 1
    assert value(after, "http_request_duration_seconds_sum", **route) > value(
        before, "http_request_duration_seconds_sum", **route
    )
    sale = {"operation": "sale", "outcome": "Approved"}
    calls = "netvalve_request_duration_seconds_count"
    assert value(after, calls, **sale) == value(before, calls, **sale) + 1
    # An id in the path never becomes a label: routes keep their template, unknown paths share
    # one series.
    event_id = "0b7c3f9e-5d1a-4c2b-8e6f-9a0d1c2b3e4f"
    await api.http.get(f"/api/v1/netvalve/webhook-events/{event_id}", headers=ADMIN)
    await api.http.get("/no-such-route/123")
    later = await scrape(api)
    template = "/api/v1/netvalve/webhook-events/{event_id}"
    assert value(later, count, method="GET", route=template, status="404") >= 1
    assert value(later, count, method="GET", route="unmatched", status="404") >= 1
    routes = {dict(labels).get("route") for name, labels in later if name.endswith(count)}
    assert not {route for route in routes if route and (event_id in route or "123" in route)}


async def test_an_unknown_outcome_is_counted_with_its_age_until_the_sweep_settles_it(
    api_factory: ApiFactory,
):
    api: Api = await api_factory(
        metrics_api_keys=[SecretStr(METRICS_KEY)],
        unknown_outcome_budget_seconds=0,
        reconcile_enabled=True,
        reconcile_interval_seconds=0.3,
        reconcile_min_age_seconds=0.5,
    )
    before = await scrape(api)
    await api.sandbox.fault("/sale", "reset")

    pending = await api.pay(await api.medusa_session())

    assert pending.status_code == 202, pending.text
    during = await scrape(api)
    lost = {"operation": "sale", "outcome": "UnknownOutcome"}
    calls = "netvalve_request_duration_seconds_count"
    assert value(during, calls, **lost) == value(before, calls, **lost) + 1
    assert value(during, "unsettled_attempts", outcome="unknown") == 1
    await asyncio.sleep(0.2)
    later = await scrape(api)
    assert value(later, "unsettled_attempt_oldest_age_seconds", outcome="unknown") >= 0.2

    async def settled() -> bool:
        status = await api.get("/status", {"payment_id": pending.json()["id"]}, key=ADMIN_KEY)
        return bool(status.json()["state"] == "captured")

    await until(settled)

    async def counted() -> bool:  # the sweep counts a payment just after settling it
        now = await scrape(api)
        return value(now, "reconcile_settled_total") > value(before, "reconcile_settled_total")

    await until(counted)
    after = await scrape(api)
    assert value(after, "unsettled_attempts", outcome="unknown") == 0
    assert value(after, "unsettled_attempt_oldest_age_seconds", outcome="unknown") == 0
    assert value(after, "reconcile_settled_total") == value(before, "reconcile_settled_total") + 1
    assert value(after, "reconcile_sweeps_total", result="ok") > value(
        before, "reconcile_sweeps_total", result="ok"
    )
    assert value(after, "reconcile_last_sweep_timestamp_seconds") > 0


async def test_a_webhook_moves_the_intake_status_and_lag_series(api: Api):
    paid = await api.pay(await api.medusa_session())
    assert paid.status_code == 200, paid.text
    before = await scrape(api)
    body = build_webhook_event(
        "PURCHASED", transactionId=paid.json()["transaction_id"], amount=44.00
    )

    assert (await post_webhook(api.http, body)).json()["status"] == "stored"
    assert (await post_webhook(api.http, body)).json()["status"] == "duplicate"
    assert (await post_webhook(api.http, b"{not json")).status_code == 400

    received = await scrape(api)
    deliveries = "webhook_deliveries_total"
    for result, added in (("stored", 1), ("duplicate", 1), ("rejected", 1)):
        assert value(received, deliveries, result=result) == (
            value(before, deliveries, result=result) + added
        )
    assert value(received, "webhook_events", status="received") == 1
    assert value(received, "webhook_events", status="rejected") == 1

    await webhook_service_of(api.http).process_due()

    after = await scrape(api)
    assert value(after, "webhook_events", status="received") == 0
    finished = {
        status: value(after, "webhook_events", status=status) for status in ("processed", "ignored")
    }
    assert sum(finished.values()) == 1
    (status,) = [name for name, count in finished.items() if count]
    lag = "webhook_intake_to_processed_seconds_count"
    assert value(after, lag, status=status) == value(before, lag, status=status) + 1
    passes = "webhook_processing_total"
    assert value(after, passes, status=status) == value(before, passes, status=status) + 1
    assert value(after, "metrics_database_up") == 1


async def test_metrics_need_an_admin_or_metrics_key(api: Api):
    anonymous = await api.http.get("/metrics")
    storefront = await api.http.get(
        "/metrics", headers={"Authorization": f"Bearer {STOREFRONT_KEY}"}
    )

    assert anonymous.status_code == 401
    assert storefront.status_code == 403
    assert await scrape(api, ADMIN_KEY)
    # A metrics key reads metrics and nothing else.
    denied = await api.get(
        "/status", {"payment_id": "00000000-0000-0000-0000-000000000000"}, key=METRICS_KEY
    )
    assert denied.status_code == 403
