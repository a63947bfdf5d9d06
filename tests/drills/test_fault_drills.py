"""Fault drills: the gateway misbehaving on every money route, and this service's own database
stopping in the middle of a payment or of webhook deliveries.

The one rule every drill checks: whatever breaks, the caller gets a clear answer (202 with the
operation in progress, a 5xx other than a bare 500 in the one error shape, or to a retry a 409
"still settling"), never a false success or decline; no retry with the same Idempotency-Key moves
money a second time (counted at the sandbox); and once the sweep has run the ledger says what
NetValve's /inquiry and /transaction say, and the payment's next operation works.

Which faults leave a transaction at the gateway (sandbox semantics, app/sandbox/faults.py):
- `hang` with `when=after` and `reset` process the request, then lose the answer: the money moved.
- `http_error` 502/503 (`when=before`) answer without processing: nothing moved. NetValve's "not
  found" is only taken as failure after NOT_FOUND_GRACE, so the drill first checks that the sweep
  does not call it failed early, then ages the attempt past the grace (the clock, not the logic,
  is what the test shortens).
"""

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.api.deps import build_netvalve_service
from app.clients.netvalve import Approved, Declined
from app.services.idempotency import STALE_AFTER
from app.services.netvalve import NetvalveService
from app.services.netvalve.reconciliation import NOT_FOUND_GRACE
from tests.drills.conftest import StoppablePostgres
from tests.fixtures.api import ADMIN_KEY, STOREFRONT_KEY, Api, ApiFactory
from tests.fixtures.ledger import assert_ledger_matches_gateway
from tests.fixtures.netvalve import build_webhook_event
from tests.fixtures.webhooks import WEBHOOK_SETTINGS, post_webhook, webhook_service_of

pytestmark = pytest.mark.asyncio

# Fast drills: the read timeout is what a hang must outlast (with room for a loaded CI machine);
# no time to settle inside the request, so every unknown outcome is visible to the caller; a
# sweep that may run again at once.
DRILL_SETTINGS: dict[str, Any] = {
    "netvalve_read_timeout": 1.0,
    "unknown_outcome_budget_seconds": 0,
    "reconcile_enabled": False,
    "reconcile_interval_seconds": 0.05,
    "reconcile_min_age_seconds": 0,
    "reconcile_max_backoff_seconds": 0.2,
    "webhook_worker_enabled": False,
}


# --- helpers -----------------------------------------------------------------------------------


def resources_of(api: Api) -> Any:
    return api.resources


def payments_of(api: Api) -> NetvalveService:
    return build_netvalve_service(resources_of(api))


def two_places(value: object) -> str:
    return f"{Decimal(str(value)):.2f}"


def ledger_view(body: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        body["state"],
        body["authorized_amount"],
        body["captured_amount"],
        body["refunded_amount"],
    )


def assert_error_shape(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body: dict[str, Any] = response.json()
    assert {"error", "detail", "request_id"} <= body.keys(), body
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


def assert_clear_answer(
    response: httpx.Response,
    operation: str,
    before: dict[str, Any] | None,
    *,
    retry: bool,
) -> None:
    """202 with this operation in progress, or an error in the one shape; never a bare 500.

    A 202 claims nothing yet: a payment is `pending`; a payment that was already authorized or
    captured (`before`) shows the same state and amounts as before the request. A retry may
    also be told that the first request is still being settled (409).
    """
    status = response.status_code
    assert status != 500, response.text
    if status == 202:
        body = response.json()
        assert body["in_progress"] == operation, body
        if before is None:
            assert (body["status"], body["state"]) == ("pending", "pending"), body
        else:
            assert (body["status"], *ledger_view(body)) == (
                before["status"],
                *ledger_view(before),
            ), body
        return
    error = assert_error_shape(response)
    if retry and status == 409:
        assert error["error"] in {"PaymentInProgress", "IdempotencyKeyInFlight"}, error
        assert response.headers["retry-after"]
        return
    assert 500 < status < 600, response.text


async def gateway_counts(api: Api, payment_id: str) -> Counter[str]:
    """Transactions at the gateway for this payment, by type (children carry its order id)."""
    return Counter(t["transactionType"] for t in await api.sandbox_transactions(payment_id))


async def status_of(api: Api, payment_id: str) -> dict[str, Any]:
    response = await api.get("/status", {"payment_id": payment_id})
    assert response.status_code in {200, 202}, response.text
    body: dict[str, Any] = response.json()
    return body


async def gateway_view(api: Api, payment: dict[str, Any]) -> tuple[str, str, str, str]:
    """The payment as NetValve sees it, in the ledger's terms, from /inquiry and /transaction."""
    zero = "0.00"
    if payment["transaction_id"] is None:
        assert await api.sandbox_transactions(payment["id"]) == []
        return ("requires_payment", zero, zero, zero)
    client = api.sandbox.client
    inquiry = await client.inquiry(payment["transaction_id"])
    assert isinstance(inquiry, Approved | Declined), inquiry
    status, kind = inquiry.body["status"], inquiry.body["transactionType"]
    amount = two_places(inquiry.body["amount"])
    if status == "Declined":
        return ("requires_payment", zero, zero, zero)
    if kind == "AUTHORIZATION" and status in {"Authorised", "Cancelled"}:
        return ("authorized" if status == "Authorised" else "canceled", amount, zero, zero)
    settled_id = payment["transaction_id"]
    if kind == "AUTHORIZATION":  # captured: the money lives on its CAPTURE child
        record = await client.get_transaction(settled_id)
        assert isinstance(record, Approved), record
        [capture] = [c for c in record.body["transactions"] if c["transactionType"] == "CAPTURE"]
        settled_id = capture["transactionId"]
    record = await client.get_transaction(settled_id)
    assert isinstance(record, Approved), record
    captured = Decimal(str(record.body["amount"]))
    refunded = captured - Decimal(str(record.body["refundBalancedAmount"]))
    state = {
        "Settled": "captured",
        "Partially Refunded": "partially_refunded",
        "Refunded": "refunded",
    }[record.body["status"]]
    return (state, amount, two_places(captured), two_places(refunded))


async def assert_agrees_with_gateway(
    api: Api, payment_id: str, ledger: StoppablePostgres | None = None
) -> dict[str, Any]:
    """The ledger as callers see it against /inquiry and /transaction, and its rows (on
    `ledger` when the test's tables are there) against the sandbox's record."""
    payment = await status_of(api, payment_id)
    assert payment["in_progress"] is None, payment
    assert ledger_view(payment) == await gateway_view(api, payment)
    if ledger is None:
        await api.assert_ledger_matches_gateway(payment_id)
        return payment
    connection = await ledger.connect()
    try:
        await assert_ledger_matches_gateway(connection, api.sandbox.admin, payment_id)
    finally:
        await connection.close()
    return payment


async def settle(api: Api, payment_id: str) -> dict[str, Any]:
    """Run the reconcile sweep until the payment's operation is settled."""
    service = payments_of(api)
    for _ in range(40):
        await service.sweep_once()
        payment = await status_of(api, payment_id)
        if payment["in_progress"] is None:
            return payment
        await asyncio.sleep(0.1)
    raise AssertionError(f"the sweep never settled {payment_id}")


async def age_past_grace(api: Api, payment_id: str) -> None:
    """Let NOT_FOUND_GRACE pass for the payment's unsettled attempt (moves its clock back)."""
    await api.medusa.execute(
        "UPDATE payment_attempts SET created_at = created_at - $2::interval "
        "WHERE payment_id = $1 AND resolved_at IS NULL",
        uuid.UUID(payment_id),
        NOT_FOUND_GRACE + timedelta(seconds=1),
    )


# --- the routes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One money request, always sent with the same body: retries must be recognisable."""

    path: str
    body: dict[str, Any]
    key: str = ADMIN_KEY

    async def send(self, api: Api, idempotency_key: str) -> httpx.Response:
        return await api.post(self.path, self.body, key=self.key, idempotency_key=idempotency_key)


@dataclass(frozen=True)
class Route:
    mode: str  # the service's NETVALVE_CAPTURE_MODE
    netvalve_path: str  # where the fault is injected
    operation: str  # `in_progress` while unsettled
    kind: str  # the sandbox's transactionType for this operation
    done: str  # ledger state once the operation happened
    undone: str  # ledger state if it never reached NetValve
    # A payment in the state this route needs (None: the route itself makes the payment) and
    # the request under test.
    prepare: Callable[[Api], Awaitable[tuple[str | None, Call]]]
    # The next operation in the payment's life, with a fresh key: its status, state and the
    # gateway's transactions at the end of the drill.
    follow_up: Callable[[str], Call]
    follow_status: int
    final_state: str
    final_counts: dict[str, int] = field(default_factory=dict)


async def _pay_request(api: Api) -> tuple[str | None, Call]:
    medusa = await api.medusa_session(amount="44.00")
    body = {"payment_session_id": medusa.session_id, "payment_token": await api.token()}
    return None, Call("/payment", body, STOREFRONT_KEY)


async def _paid(api: Api) -> str:
    paid = await api.pay(await api.medusa_session(amount="44.00"))
    assert paid.status_code == 200, paid.text
    return str(paid.json()["id"])


async def _capture_request(api: Api) -> tuple[str | None, Call]:
    payment_id = await _paid(api)
    return payment_id, Call("/capture", {"payment_id": payment_id, "amount": "30.00"})


async def _refund_request(api: Api) -> tuple[str | None, Call]:
    payment_id = await _paid(api)
    return payment_id, Call("/refund", {"payment_id": payment_id, "amount": "10.00"})


async def _cancel_request(api: Api) -> tuple[str | None, Call]:
    payment_id = await _paid(api)
    return payment_id, Call("/cancel", {"payment_id": payment_id})


ROUTES: dict[str, Route] = {
    "sale": Route(
        mode="sale",
        netvalve_path="/sale",
        operation="sale",
        kind="SALE",
        done="captured",
        undone="requires_payment",
        prepare=_pay_request,
        follow_up=lambda pid: Call("/refund", {"payment_id": pid, "amount": "4.00"}),
        follow_status=200,
        final_state="partially_refunded",
        final_counts={"SALE": 1, "REFUND": 1},
    ),
    "authorize": Route(
        mode="manual",
        netvalve_path="/authorize",
        operation="authorize",
        kind="AUTHORIZATION",
        done="authorized",
        undone="requires_payment",
        prepare=_pay_request,
        follow_up=lambda pid: Call("/capture", {"payment_id": pid}),
        follow_status=200,
        final_state="captured",
        final_counts={"AUTHORIZATION": 1, "CAPTURE": 1},
    ),
    "capture": Route(
        mode="manual",
        netvalve_path="/capture",
        operation="capture",
        kind="CAPTURE",
        done="captured",
        undone="authorized",
        prepare=_capture_request,
        follow_up=lambda pid: Call("/refund", {"payment_id": pid, "amount": "5.00"}),
        follow_status=200,
        final_state="partially_refunded",
        final_counts={"AUTHORIZATION": 1, "CAPTURE": 1, "REFUND": 1},
    ),
    "refund": Route(
        mode="sale",
        netvalve_path="/refund",
        operation="refund",
        kind="REFUND",
        done="partially_refunded",
        undone="captured",
        prepare=_refund_request,
        follow_up=lambda pid: Call("/refund", {"payment_id": pid}),
        follow_status=200,
        final_state="refunded",
        final_counts={"SALE": 1, "REFUND": 2},
    ),
    "cancel": Route(
        mode="manual",
        netvalve_path="/cancel",
        operation="cancel",
        kind="CANCEL",
        done="canceled",
        undone="authorized",
        prepare=_cancel_request,
        follow_up=lambda pid: Call("/capture", {"payment_id": pid}),
        follow_status=409,  # a cancelled authorization cannot be captured: refused, no call
        final_state="canceled",
        final_counts={"AUTHORIZATION": 1, "CANCEL": 1},
    ),
}


@dataclass(frozen=True)
class Fault:
    rule: dict[str, Any]
    processed: bool  # whether NetValve did the work although the caller never heard


FAULTS: dict[str, Fault] = {
    # Processed, then silent for three read timeouts.
    "hang": Fault({"kind": "hang", "hang_seconds": 3.0, "when": "after"}, processed=True),
    # Processed; the status line arrives, then the connection drops before the body.
    "reset": Fault({"kind": "reset"}, processed=True),
    # A proxy in front of NetValve refuses before anything is processed.
    "http_502": Fault({"kind": "http_error", "status": 502}, processed=False),
    "http_503": Fault({"kind": "http_error", "status": 503}, processed=False),
}


# --- 1. every money route under every fault -------------------------------------------------


CASES = [pytest.param(route, fault, id=f"{route}-{fault}") for route in ROUTES for fault in FAULTS]


@pytest.mark.parametrize(("route_name", "fault_name"), CASES)
async def test_a_gateway_fault_never_double_moves_money_and_the_sweep_agrees_with_netvalve(
    api_factory: ApiFactory, route_name: str, fault_name: str
) -> None:
    route, fault = ROUTES[route_name], FAULTS[fault_name]
    api: Api = await api_factory(**DRILL_SETTINGS, netvalve_capture_mode=route.mode)
    payment_id, call = await route.prepare(api)
    before = await gateway_counts(api, payment_id) if payment_id else Counter[str]()
    unchanged = await status_of(api, payment_id) if payment_id else None
    key = f"drill-{route_name}-{fault_name}-{uuid.uuid4().hex[:12]}"
    await api.sandbox.fault(route.netvalve_path, **fault.rule)  # fires once

    # While the outcome is unknown: a clear answer, also to a retry with the same key.
    first = await call.send(api, key)
    assert_clear_answer(first, route.operation, unchanged, retry=False)
    if payment_id is None:
        found = await api.get("/status", {"payment_session_id": call.body["payment_session_id"]})
        payment_id = str(found.json()["id"])
    retried = await call.send(api, key)
    assert_clear_answer(retried, route.operation, unchanged, retry=True)
    moved = 1 if fault.processed else 0
    assert await gateway_counts(api, payment_id) == before + Counter({route.kind: moved})

    if not fault.processed:
        # Right after the fault NetValve's "not found" may still be a request on its way:
        # the sweep leaves it pending rather than calling it failed (never a false decline).
        await asyncio.sleep(0.1)
        await payments_of(api).sweep_once()
        assert (await status_of(api, payment_id))["in_progress"] == route.operation
        await age_past_grace(api, payment_id)

    # The sweep settles it from NetValve's records, and the ledger agrees with /inquiry.
    settled = await settle(api, payment_id)
    assert settled["state"] == (route.done if fault.processed else route.undone)
    await assert_agrees_with_gateway(api, payment_id)

    # The same request again, same key: done once, whichever way the fault went.
    again = await call.send(api, key)
    assert again.status_code == 200, again.text
    assert again.json()["state"] == route.done
    assert await gateway_counts(api, payment_id) == before + Counter({route.kind: 1})
    await assert_agrees_with_gateway(api, payment_id)

    # And the payment's life goes on normally.
    follow = await route.follow_up(payment_id).send(api, f"{key}-next")
    assert follow.status_code == route.follow_status, follow.text
    final = await assert_agrees_with_gateway(api, payment_id)
    assert final["state"] == route.final_state
    assert await gateway_counts(api, payment_id) == Counter(route.final_counts)


# --- 2. this service's database stops while a sale is at the gateway --------------------------


async def test_database_down_during_a_sale_is_a_clear_5xx_then_one_charge_and_settled(
    api_factory: ApiFactory, stoppable_db: StoppablePostgres, database_url: str
) -> None:
    # Our tables on the stoppable server; Medusa's stay on the suite's (they are not ours).
    api: Api = await api_factory(
        **{**DRILL_SETTINGS, "netvalve_read_timeout": 10.0},
        database_url=stoppable_db.url,
        medusa_database_url=database_url,
    )
    medusa = await api.medusa_session(amount="44.00")
    call = Call(
        "/payment",
        {"payment_session_id": medusa.session_id, "payment_token": await api.token()},
        STOREFRONT_KEY,
    )
    key = f"drill-db-down-{uuid.uuid4().hex[:12]}"
    # NetValve has processed the sale and its answer is on its way back to the service: hold it
    # there (a response hook on the service's own HTTP client) while the database stops.
    answered, released = asyncio.Event(), asyncio.Event()

    async def hold_the_sale(response: httpx.Response) -> None:
        if response.request.url.path == "/sale":
            answered.set()
            await released.wait()

    http = resources_of(api).http_client
    http.event_hooks = {**http.event_hooks, "response": [hold_the_sale]}
    paying = asyncio.create_task(call.send(api, key))
    await asyncio.wait_for(answered.wait(), timeout=10)
    ours = await stoppable_db.connect()
    try:  # the claim and the attempt were committed before the call
        found = await ours.fetchval("SELECT id FROM payments")
        assert found is not None, "the payment was never claimed"
        payment_id = str(found)
    finally:
        await ours.close()

    await stoppable_db.stop()
    released.set()
    answer = await asyncio.wait_for(paying, timeout=10)
    charged = await api.sandbox_transactions(payment_id)
    assert [t["transactionType"] for t in charged] == ["SALE"]  # NetValve did charge the card
    sale = charged[0]
    await stoppable_db.start()

    # The caller is told that this failed on our side, in the one shape, without internals
    # (the exact status is checked last, below).
    assert 500 <= answer.status_code < 600, answer.text
    assert_error_shape(answer)
    for internal in ("asyncpg", "sqlalchemy", "errno", "postgres"):
        assert internal not in answer.text.lower()

    # The caller retries at once with the same key: no second charge, whatever it is told.
    retried = await call.send(api, key)
    if retried.status_code != 200:
        assert_clear_answer(retried, "sale", None, retry=True)
    assert await api.sandbox_transactions(payment_id) == [sale]

    # The sweep finds the sale by its clientOrderId and settles the ledger to NetValve's record.
    settled = await settle(api, payment_id)
    assert ledger_view(settled) == ("captured", "44.00", "44.00", "0.00")
    assert settled["transaction_id"] == sale["transactionId"]
    await assert_agrees_with_gateway(api, payment_id, stoppable_db)

    # Once the first request's key is taken to have died, the retry answers with the payment.
    ours = await stoppable_db.connect()
    try:
        await ours.execute(
            "UPDATE idempotency_keys SET locked_at = locked_at - $1::interval",
            STALE_AFTER + timedelta(seconds=1),
        )
    finally:
        await ours.close()
    late = await call.send(api, key)
    assert late.status_code == 200, late.text
    assert (late.json()["id"], late.json()["state"]) == (payment_id, "captured")
    assert await api.sandbox_transactions(payment_id) == [sale]
    await assert_agrees_with_gateway(api, payment_id, stoppable_db)

    # A database outage is a 503 the caller may retry, like the webhook intake's, not a 500.
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"]


# --- 3. this service's database stops while NetValve delivers webhooks -----------------------


async def test_database_down_during_webhook_intake_then_each_event_applied_once(
    api_factory: ApiFactory, stoppable_db: StoppablePostgres, database_url: str
) -> None:
    api: Api = await api_factory(
        **{**DRILL_SETTINGS, **WEBHOOK_SETTINGS, "netvalve_read_timeout": 10.0},
        database_url=stoppable_db.url,
        medusa_database_url=database_url,
    )
    paid = await api.pay(await api.medusa_session(amount="44.00"))
    assert paid.status_code == 200, paid.text
    payment = paid.json()
    # Two refunds made in NetValve's portal, outside this service: only webhooks tell us.
    events = []
    for amount in ("4.00", "6.00"):
        refund = await api.sandbox.client.refund(payment["transaction_id"], Decimal(amount))
        assert isinstance(refund, Approved), refund
        events.append(
            build_webhook_event(
                "REFUNDED",
                transactionType="REFUND",
                clientOrderId=f"{uuid.UUID(payment['id']).hex}-1",
                transactionId=refund.transaction_id,
                amount=float(amount),
            )
        )
    first, second = events
    inbox = "SELECT event_name, transaction_id, status FROM webhook_events ORDER BY received_at"

    stored_before = await post_webhook(api.http, first)
    assert stored_before.json()["status"] == "stored"
    await stoppable_db.stop()
    refused = [await post_webhook(api.http, body) for body in (second, first, second)]
    await stoppable_db.start()

    for response in refused:
        assert response.status_code == 503, response.text
        assert assert_error_shape(response)["error"] == "WebhookStoreUnavailable"
        assert int(response.headers["retry-after"]) > 0
    ours = await stoppable_db.connect()
    try:
        # Nothing half-stored: only the event that was answered 200.
        rows = await ours.fetch(inbox)
        assert [(r["transaction_id"], r["status"]) for r in rows] == [
            (first["data"]["transactionId"], "received")
        ]

        # NetValve redelivers everything it was refused, some of it twice.
        redelivered = [await post_webhook(api.http, body) for body in (second, first, second)]
        assert [r.json()["status"] for r in redelivered] == ["stored", "duplicate", "duplicate"]

        # Stored is not applied: the ledger moves only when the worker processes them.
        assert ledger_view(await status_of(api, payment["id"]))[3] == "0.00"
        processed = await webhook_service_of(api.http).process_due()
        assert processed == 2
        rows = await ours.fetch(inbox)
        assert sorted((r["transaction_id"], r["status"]) for r in rows) == sorted(
            (body["data"]["transactionId"], "processed") for body in events
        )

        # A late redelivery after processing changes nothing.
        assert (await post_webhook(api.http, first)).json()["status"] == "duplicate"
        assert await webhook_service_of(api.http).process_due() == 0
        refunds = await ours.fetchval(
            "SELECT count(*) FROM payment_attempts WHERE operation = 'refund' "
            "AND outcome = 'approved' AND payment_id = $1",
            uuid.UUID(payment["id"]),
        )
        assert refunds == 2
    finally:
        await ours.close()

    final = await assert_agrees_with_gateway(api, payment["id"], stoppable_db)
    assert ledger_view(final) == ("partially_refunded", "44.00", "44.00", "10.00")


# --- 4. every pooled connection of this service's database is busy -----------------------------


async def test_an_exhausted_connection_pool_is_a_503_that_changes_nothing(
    api_factory: ApiFactory,
) -> None:
    api: Api = await api_factory(
        # A sale with one pooled connection on a loaded 2-core machine took 1.15 s in CI: past
        # the drills' 1 s read timeout it is an unknown outcome (202), which is not this drill.
        **{**DRILL_SETTINGS, "netvalve_read_timeout": 10.0},
        database_pool_size=1,
        database_max_overflow=0,
        database_pool_timeout_seconds=0.2,
    )
    medusa = await api.medusa_session(amount="44.00")
    call = Call(
        "/payment",
        {"payment_session_id": medusa.session_id, "payment_token": await api.token()},
        STOREFRONT_KEY,
    )
    key = f"drill-pool-{uuid.uuid4().hex[:12]}"
    engine = resources_of(api).engine
    before = await api.ledger_counts()
    keys = "SELECT count(*) FROM idempotency_keys WHERE key = $1"

    async with engine.connect():  # the pool's only connection, held elsewhere
        busy = await call.send(api, key)
        body = assert_error_shape(busy)
        assert (busy.status_code, body["error"]) == (503, "DatabaseUnavailable"), busy.text
        assert busy.headers["retry-after"]
        assert await api.ledger_counts() == before
        assert await api.medusa.fetchval(keys, key) == 0

    # Nothing was stored, the key included: the same request goes through once a connection is
    # free, and charges once.
    paid = await call.send(api, key)
    assert paid.status_code == 200, paid.text
    assert await gateway_counts(api, paid.json()["id"]) == Counter({"SALE": 1})
    await api.assert_ledger_matches_gateway(paid.json()["id"])
