"""Two service processes against one database, as production runs replicas (or uvicorn's
`--workers 2` in `docker-compose.prod.yml`).

Both run the webhook worker and the reconcile sweep. Every webhook goes to both replicas (at
least twice, some re-stamped, some re-traced by NetValve), concurrently, so both workers compete
for one inbox; payments left in an unknown state make both sweepers compete for them. The
evidence comes from what an operator has: the inbox table, the ledger through `/status`,
NetValve's own records, and the replicas' JSON logs.
"""

import asyncio
import json
import random
import signal
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from tests.fixtures.api import Api
from tests.fixtures.gateway import Receiver, SandboxBackend
from tests.fixtures.ledger import gateway_transactions, order_prefix
from tests.fixtures.webhooks import WEBHOOK_VALUES, dedup_key_of, post_webhook
from tests.multiprocess.conftest import ServiceProcess

pytestmark = pytest.mark.asyncio

PAYMENTS = 20  # paid through the replicas in turn, 44.00 each
REFUNDS = 10  # per payment, made at NetValve directly: only webhooks tell the service
UNKNOWN = 4  # payments whose /sale answer is lost: only the sweep settles them
RETRACED_SHARE = 0.2  # refund events that NetValve also sends under a new traceId
SEED = 20260412  # one fixed workload: the same run every time
REFUND_STEPS = [Decimal(value) for value in ("0.50", "1.00", "1.25", "2.00", "3.10")]
WAITING = ("received", "failed", "pending_match")


def redeliveries(
    events: list[dict[str, Any]], shuffler: random.Random
) -> tuple[list[list[bytes]], set[str]]:
    """Each event twice, once to each replica (the second copy re-stamped half the time), plus
    re-traced twins of some refunds; per replica in shuffled order. Also the distinct events."""
    per_replica: list[list[bytes]] = [[], []]
    distinct: set[str] = set()
    for event in events:
        variants = [event]
        if event["eventName"] == "REFUNDED" and shuffler.random() < RETRACED_SHARE:
            twin = json.loads(json.dumps(event))
            twin["data"]["traceId"] = str(uuid.UUID(int=shuffler.getrandbits(128)))
            variants.append(twin)
        for variant in variants:
            distinct.add(dedup_key_of(variant))
            again = json.loads(json.dumps(variant))
            if shuffler.random() < 0.5:
                again["data"]["responseTimestamp"] = "2026-04-12T04:00:00.000000000"
            first = shuffler.randrange(2)
            per_replica[first].append(json.dumps(variant).encode())
            per_replica[1 - first].append(json.dumps(again).encode())
    for batch in per_replica:
        shuffler.shuffle(batch)
    return per_replica, distinct


async def deliver_all(apis: list[Api], per_replica: list[list[bytes]]) -> Counter[str]:
    """Two concurrent senders per replica; the receipts' statuses (`stored`/`duplicate`)."""

    async def send(api: Api, bodies: list[bytes], value: str) -> list[str]:
        receipts = []
        for body in bodies:
            response = await post_webhook(api.http, body, value=value)
            assert response.status_code == 200, response.text
            receipts.append(str(response.json()["status"]))
        return receipts

    senders = [
        send(api, bodies[half::2], WEBHOOK_VALUES[half])  # both values: a rotation in progress
        for api, bodies in zip(apis, per_replica, strict=True)
        for half in (0, 1)
    ]
    return Counter(status for batch in await asyncio.gather(*senders) for status in batch)


def refund_plan(shuffler: random.Random, *, everything_left: bool) -> list[Decimal | None]:
    """REFUNDS amounts for one payment; the last is None (all that is left) if asked."""
    plan: list[Decimal | None] = [shuffler.choice(REFUND_STEPS) for _ in range(REFUNDS - 1)]
    plan.append(None if everything_left else shuffler.choice(REFUND_STEPS))
    return plan


async def refund_outside(
    gateway: SandboxBackend, transaction_id: int, plan: list[Decimal | None]
) -> None:
    for amount in plan:
        refund = await gateway.client.refund(transaction_id, amount)
        assert refund.response_code == "GTW_1000", refund  # type: ignore[union-attr]


async def wait_for(db: asyncpg.Connection, query: str, *args: Any, seconds: float) -> bool:
    """Poll until `query` returns true."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await db.fetchval(query, *args):
            return True
        await asyncio.sleep(0.1)
    return False


def log_events(process: ServiceProcess, name: str) -> list[dict[str, Any]]:
    return [line for line in process.log_lines() if line.get("event") == name]


async def test_two_replicas_apply_each_webhook_once_and_settle_each_unknown_once(
    two_services: list[ServiceProcess],
    recorder: tuple[SandboxBackend, Receiver],
    shared_db: asyncpg.Connection,
) -> None:
    gateway, receiver = recorder
    shuffler = random.Random(SEED)  # noqa: S311 (a fixed workload, not security)
    async with AsyncExitStack() as stack:
        apis = []
        for process in two_services:
            http = httpx.AsyncClient(base_url=process.url, timeout=30)
            await stack.enter_async_context(http)
            apis.append(Api(http, shared_db, gateway))

        # Payments, through both replicas in turn.
        sessions = [await apis[0].medusa_session() for _ in range(PAYMENTS + UNKNOWN)]
        paid = await asyncio.gather(
            *(apis[index % 2].pay(session) for index, session in enumerate(sessions[:PAYMENTS]))
        )
        assert [response.status_code for response in paid] == [200] * PAYMENTS, paid[0].text
        payments = [response.json() for response in paid]

        # Refunds at NetValve directly: the service learns of them only by webhook. Every
        # fourth payment's last refund takes all that is left.
        plans = [refund_plan(shuffler, everything_left=index % 4 == 0) for index in range(PAYMENTS)]
        await asyncio.gather(
            *(
                refund_outside(gateway, payment["transaction_id"], plan)
                for payment, plan in zip(payments, plans, strict=True)
            )
        )

        # Lost answers: the sale happens at NetValve, the connection drops before the body.
        faults = await gateway.admin.post(
            "/_sandbox/faults", json={"path": "/sale", "kind": "reset", "times": UNKNOWN}
        )
        assert faults.status_code == 201, faults.text
        unknown = []
        for index, session in enumerate(sessions[PAYMENTS:]):
            lost = await apis[index % 2].pay(session)
            assert lost.status_code == 202, lost.text
            assert (lost.json()["state"], lost.json()["in_progress"]) == ("pending", "sale")
            unknown.append(str(lost.json()["id"]))
        assert (await gateway.admin.get("/_sandbox/faults")).json() == []

        # NetValve's webhooks, as its own delivery log has them.
        expected = PAYMENTS * (1 + REFUNDS) + UNKNOWN
        events = list(await receiver.wait_for(expected, seconds=30))
        delivered = (await gateway.admin.get("/_sandbox/webhooks")).json()["delivered"]
        assert len(events) == len(delivered) == expected
        held_prefixes = tuple(order_prefix(payment_id) for payment_id in unknown)
        held = [e for e in events if str(e["data"]["clientOrderId"]).startswith(held_prefixes)]
        others = [event for event in events if event not in held]
        assert len(held) == UNKNOWN

        # Every event to both replicas at once, while both sweepers settle the lost sales. The
        # lost sales' own events are held back until the sweep has settled them, so that the
        # sweep alone settles them.
        per_replica, distinct = redeliveries(others, shuffler)
        receipts = await deliver_all(apis, per_replica)
        settled = await wait_for(
            shared_db,
            "SELECT count(*) = $2 FROM payments WHERE id = ANY($1::uuid[]) AND in_flight IS NULL",
            unknown,
            UNKNOWN,
            seconds=30,
        )
        assert settled, "the sweepers did not settle the lost sales"
        late, late_distinct = redeliveries(held, shuffler)
        receipts += await deliver_all(apis, late)
        distinct |= late_distinct

        drained = await wait_for(
            shared_db,
            "SELECT count(*) = $1 AND count(*) FILTER (WHERE status = ANY($2::text[])) = 0 "
            "FROM webhook_events",
            len(distinct),
            list(WAITING),
            seconds=60,
        )
        rows = [
            dict(row)
            for row in await shared_db.fetch(
                "SELECT id::text, status::text, event_name, transaction_id FROM webhook_events"
            )
        ]
        assert drained, Counter(row["status"] for row in rows)

        # Each distinct event stored once, whichever replica got it first; every copy answered.
        assert receipts == {"stored": len(distinct), "duplicate": len(distinct)}  # each sent twice
        assert len(rows) == len(distinct)
        retraced = len(distinct) - expected
        assert retraced > 0
        assert Counter((row["event_name"], row["status"]) for row in rows) == {
            ("PURCHASED", "ignored"): PAYMENTS + UNKNOWN,  # already settled by request or sweep
            ("REFUNDED", "processed"): PAYMENTS * REFUNDS,
            ("REFUNDED", "ignored"): retraced,  # the twin of a refund already counted
        }
        processed_refunds = Counter(
            row["transaction_id"]
            for row in rows
            if row["event_name"] == "REFUNDED" and row["status"] == "processed"
        )
        assert set(processed_refunds.values()) == {1}

        # The ledger, as callers see it, equals NetValve's record, replayed in order.
        gateway_refunds: set[int] = set()
        for index, payment in enumerate(payments):
            record = await gateway_transactions(gateway.admin, payment["id"])
            refunds = [t for t in record if t["transactionType"] == "REFUND"]
            total = sum((t["amount"] for t in refunds), Decimal("0"))
            gateway_refunds |= {t["transactionId"] for t in refunds}
            status = (await apis[index % 2].get("/status", {"payment_id": payment["id"]})).json()
            assert [t["transactionType"] for t in record].count("SALE") == 1
            assert len(refunds) == REFUNDS
            assert (status["state"], status["captured_amount"], status["refunded_amount"]) == (
                "refunded" if total == Decimal("44.00") else "partially_refunded",
                "44.00",
                str(total),
            ), payment["id"]
            assert status["in_progress"] is None
            await apis[index % 2].assert_ledger_matches_gateway(payment["id"])
        assert len(gateway_refunds) == PAYMENTS * REFUNDS
        recorded = await shared_db.fetch(
            "SELECT transaction_id FROM payment_attempts "
            "WHERE operation = 'refund' AND outcome = 'approved'"
        )
        assert sorted(row["transaction_id"] for row in recorded) == sorted(gateway_refunds)

        # Each lost sale: settled to what NetValve did, from its one sale, with no resend.
        for index, payment_id in enumerate(unknown):
            status = (await apis[index % 2].get("/status", {"payment_id": payment_id})).json()
            record = await gateway_transactions(gateway.admin, payment_id)
            attempts = await shared_db.fetch(
                "SELECT outcome::text FROM payment_attempts WHERE payment_id = $1::uuid",
                payment_id,
            )
            assert (status["state"], status["captured_amount"]) == ("captured", "44.00")
            assert [(t["transactionType"], t["status"]) for t in record] == [("SALE", "Settled")]
            assert status["transaction_id"] == record[0]["transactionId"]
            assert [row["outcome"] for row in attempts] == ["approved"]
            await apis[index % 2].assert_ledger_matches_gateway(payment_id)

    # Stopped as an orchestrator stops replicas (uvicorn exits by the signal it handled, after
    # a complete shutdown); the logs are complete once they exit.
    assert [process.stop() for process in two_services] == [-signal.SIGTERM] * 2
    for process in two_services:
        assert log_events(process, "app.stopping"), process.tail()

    # Each event's outcome was reached exactly once, by one replica, and both did a share.
    outcomes: dict[str, Counter[str]] = {}
    for process in two_services:
        outcomes[process.name] = Counter(
            line["event_id"]
            for line in log_events(process, "webhook.processed")
            if line["status"] in ("processed", "ignored")
        )
    union = sum(outcomes.values(), Counter[str]())
    assert union == Counter(row["id"] for row in rows)
    for name, done in outcomes.items():
        assert len(done) >= len(rows) // 10, (name, {k: len(v) for k, v in outcomes.items()})
    logged_status = {
        line["event_id"]: line["status"]
        for process in two_services
        for line in log_events(process, "webhook.processed")
        if line["status"] in ("processed", "ignored")
    }
    assert logged_status == {row["id"]: row["status"] for row in rows}

    # Each lost sale was settled by one sweep of one replica, and the sweeps settled nothing
    # else (everything else was settled by its own request).
    sweeps = Counter(
        line["payment_id"]
        for process in two_services
        for line in log_events(process, "reconcile.settled")
    )
    assert sweeps == Counter(unknown)

    # Nothing went wrong along the way that only the logs would show.
    for process in two_services:
        problems = [
            line for line in process.log_lines() if line.get("level") in ("error", "critical")
        ]
        assert problems == [], process.name
