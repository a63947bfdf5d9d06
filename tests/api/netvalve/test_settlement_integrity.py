"""Settlement integrity: every answer matched to its own attempt, every event proven, no hidden
second charge. One test per way the ledger and NetValve were seen to come apart, each through
the public API against a sandbox whose webhooks the test delivers when it chooses: late, mid
flight, twice, stripped of their transaction id, or pointed at another payment.
"""

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest

from app.api.deps import build_gateway_event_service
from app.clients.netvalve import Approved
from app.core import metrics
from tests.fixtures.api import ADMIN_KEY, Api
from tests.fixtures.gateway import (
    DECLINE_CARD,
    Receiver,
    SandboxBackend,
)
from tests.fixtures.settlement import (
    approved_roots,
    deliver,
    last_error,
    late_sale_after_a_paid_retry,
    pay,
    process,
    sent,
    status,
    until,
)

pytestmark = pytest.mark.asyncio

# --- 1. an answer for one attempt settled another --------------------------------------------


class TestEveryAnswerMatchesItsOwnAttempt:
    async def test_a_late_decline_never_settles_the_retry_nettvalve_left_pending(
        self, make: Any, receiver: Receiver
    ):
        api = await make(unknown_outcome_budget_seconds=0)
        session = await api.medusa_session(amount="1002.00")  # a good card is left pending
        declined = await pay(api, session.session_id, DECLINE_CARD)
        assert declined.status_code == 402, declined.text
        payment_id = declined.json()["payment"]["id"]
        [first] = await api.sandbox_transactions(payment_id)

        retry = await pay(api, session.session_id)
        assert retry.status_code == 202, retry.text
        await deliver(api, await sent(receiver, first["transactionId"], "PURCHASE_FAILED"))
        rows = await process(api)

        after = await status(api, payment_id)
        assert after["state"] in ("pending", "captured"), after
        [row] = [row for row in rows if row["transaction_id"] == first["transactionId"]]
        assert row["status"] == "ignored" or after["state"] == "captured", row
        await asyncio.sleep(0.6)  # the sandbox approves its pending sale after 0.5 s
        settled = await status(api, payment_id, refresh=True)
        [sale] = await approved_roots(api, payment_id)
        assert (settled["state"], settled["transaction_id"]) == ("captured", sale["transactionId"])
        await deliver(api, await sent(receiver, sale["transactionId"], "PURCHASED"))
        await process(api)
        final = await status(api, payment_id)
        assert (final["captured_amount"], final["extra_charged_amount"]) == ("1002.00", "0.00")
        again = await pay(api, session.session_id)  # the session is paid: never charged twice
        assert (again.status_code, again.json()["payment"]["state"]) == (409, "captured")
        assert len(await approved_roots(api, payment_id)) == 1
        await api.assert_ledger_matches_gateway(payment_id)

    async def test_a_decline_delivered_while_the_retry_is_in_flight_is_not_its_answer(
        self, make: Any, receiver: Receiver, gateway: SandboxBackend
    ):
        api = await make()
        session = await api.medusa_session()
        declined = await pay(api, session.session_id, DECLINE_CARD)
        payment_id = declined.json()["payment"]["id"]
        [first] = await api.sandbox_transactions(payment_id)
        failed_event = await sent(receiver, first["transactionId"], "PURCHASE_FAILED")
        await gateway.fault("/sale", "latency", latency_ms=800)

        retry = asyncio.create_task(pay(api, session.session_id))
        await until(lambda: _in_flight(api, payment_id), "the retry to be in flight at the gateway")
        await deliver(api, failed_event)
        await process(api)
        answer = await retry

        assert answer.status_code == 200, answer.text
        [sale] = await approved_roots(api, payment_id)
        assert (answer.json()["state"], answer.json()["transaction_id"]) == (
            "captured",
            sale["transactionId"],
        )
        assert answer.json()["response_code"] == "GTW_1000"
        await api.assert_ledger_matches_gateway(payment_id)


async def _in_flight(api: Api, payment_id: str) -> bool:
    return bool((await status(api, payment_id))["in_progress"] == "sale")


# --- 2. events without a transaction id skipped the proof ------------------------------------


class TestEventsWithoutATransactionIdAreProven:
    async def test_a_purchased_naming_only_a_declined_order_captures_nothing(
        self, make: Any, receiver: Receiver
    ):
        api = await make()
        declined = await pay(api, (await api.medusa_session()).session_id, DECLINE_CARD)
        payment_id = declined.json()["payment"]["id"]
        [first] = await api.sandbox_transactions(payment_id)
        forged = await sent(receiver, first["transactionId"], "PURCHASE_FAILED")
        forged["eventName"] = "PURCHASED"
        forged["data"].update(responseCode="GTW_1000", responseCodeType="APPROVED")
        del forged["data"]["transactionId"]

        await deliver(api, forged)
        [row] = await process(api)

        assert row["status"] == "ignored"
        assert "holds no approved SALE" in row["last_error"]
        after = await status(api, payment_id)
        assert (after["state"], after["captured_amount"]) == ("requires_payment", "0.00")
        await api.assert_ledger_matches_gateway(payment_id)

    async def test_a_refund_without_transaction_id_counts_once_whatever_the_trace_or_replay(
        self, make: Any, receiver: Receiver, gateway: SandboxBackend
    ):
        api = await make()
        paid = (await pay(api, (await api.medusa_session(amount="100.00")).session_id)).json()
        ours = await api.post("/refund", {"payment_id": paid["id"], "amount": "30.00"})
        assert ours.status_code == 200, ours.text
        outside = await gateway.client.refund(paid["transaction_id"], Decimal("30.00"))
        assert isinstance(outside, Approved)
        template = await sent(receiver, outside.transaction_id or 0, "REFUNDED")
        del template["data"]["transactionId"]

        for _ in range(4):  # NetValve re-traces redeliveries: each one is a new inbox row
            template["data"]["traceId"] = str(uuid.uuid4())
            await deliver(api, template)
        rows = await process(api)
        for row in rows:
            replayed = await api.http.post(
                f"/api/v1/netvalve/webhook-events/{row['id']}/replay",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert replayed.status_code == 200, replayed.text

        after = await status(api, paid["id"])
        assert (after["state"], after["refunded_amount"]) == ("partially_refunded", "60.00")
        statuses = sorted(row["status"] for row in rows)
        assert statuses == ["ignored", "ignored", "ignored", "processed"]
        assert all(
            "already in the ledger" in str(row["last_error"])
            for row in rows
            if row["status"] == "ignored"
        )
        await api.assert_ledger_matches_gateway(paid["id"])

    async def test_chargebacks_are_proven_and_bounded(self, make: Any, gateway: SandboxBackend):
        api = await make()
        paid = (await pay(api, (await api.medusa_session()).session_id)).json()
        base = {
            "transactionType": "SALE",
            "clientOrderId": f"{uuid.UUID(paid['id']).hex}-1",
            "traceId": str(uuid.uuid4()),
            "responseCode": "GTW_1000",
            "responseCodeType": "APPROVED",
            "chargebackTransactionType": "Chargeback",
        }
        nowhere = {**base, "transactionId": paid["transaction_id"] + 10**6, "amount": 44.00}
        absurd = {**base, "transactionId": paid["transaction_id"], "amount": 10**12}
        unrecorded = {**base, "transactionId": paid["transaction_id"], "amount": 12.00}
        for data in (nowhere, absurd, unrecorded):
            await deliver(api, {"eventName": "CHARGEBACK", "data": data})

        rows = await process(api)

        assert [row["status"] for row in rows] == ["ignored"] * 3
        assert "has no transaction" in rows[0]["last_error"]
        assert f"no chargeback of {10**12}" in rows[1]["last_error"]
        assert "no chargeback of 12" in rows[2]["last_error"]
        after = await status(api, paid["id"])
        assert (after["charged_back_amount"], after["charged_back_at"]) == ("0.00", None)
        await api.assert_ledger_matches_gateway(paid["id"])


# --- 3. an event naming the wrong transaction type -------------------------------------------


class TestTheRecordMustHaveTheEventsType:
    async def test_a_refunded_naming_the_sale_itself_refunds_nothing(
        self, make: Any, receiver: Receiver
    ):
        api = await make()
        paid = (await pay(api, (await api.medusa_session()).session_id)).json()
        forged = await sent(receiver, paid["transaction_id"], "PURCHASED")
        forged["eventName"] = "REFUNDED"
        forged["data"]["transactionType"] = "REFUND"

        await deliver(api, forged)
        [row] = await process(api)

        assert row["status"] == "ignored"
        assert row["last_error"] == (
            f"not proven: NetValve's {paid['transaction_id']} is a SALE, not a REFUND"
        )
        after = await status(api, paid["id"])
        assert (after["state"], after["refunded_amount"]) == ("captured", "0.00")
        await api.assert_ledger_matches_gateway(paid["id"])


# --- 4. a late sale became a hidden second charge --------------------------------------------


class TestNoInvisibleMoney:
    async def test_a_sale_processed_after_the_grace_is_flagged_as_an_extra_charge(
        self, make: Any, receiver: Receiver, gateway: SandboxBackend
    ):
        api = await make(netvalve_not_found_grace_seconds=0.2, unknown_outcome_budget_seconds=0)
        payment_id, late = await late_sale_after_a_paid_retry(api, gateway)
        found = metrics.EXTRA_CHARGES.labels("found")._value.get()

        for _ in range(2):
            await deliver(api, await sent(receiver, late["transactionId"], "PURCHASED"))
        await process(api)

        after = await status(api, payment_id)
        assert (after["captured_amount"], after["extra_charged_amount"]) == ("44.00", "44.00")
        assert metrics.EXTRA_CHARGES.labels("found")._value.get() == found + 1
        listed = await api.http.get(
            "/api/v1/netvalve/extra-charges",
            params={"payment_id": payment_id},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        [charge] = listed.json()["items"]
        assert (charge["transaction_id"], charge["amount"], charge["status"]) == (
            late["transactionId"],
            "44.00",
            "open",
        )
        scraped = await api.http.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert 'netvalve_gateway_extra_charges_held{status="open"} 1.0' in scraped.text

        reversed_ = await api.http.post(
            f"/api/v1/netvalve/extra-charges/{charge['id']}/reverse",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        again = await api.http.post(
            f"/api/v1/netvalve/extra-charges/{charge['id']}/reverse",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert reversed_.json()["status"] == again.json()["status"] == "reversed"
        refunds = [
            t
            for t in await api.sandbox_transactions(payment_id)
            if t["transactionType"] == "REFUND"
        ]
        assert [refund["amount"] for refund in refunds] == [44.0]  # reversed once
        final = await status(api, payment_id)
        assert (final["captured_amount"], final["extra_charged_amount"]) == ("44.00", "0.00")
        await api.assert_ledger_matches_gateway(payment_id)

    async def test_with_the_setting_the_extra_charge_is_reversed_at_once(
        self, make: Any, receiver: Receiver, gateway: SandboxBackend
    ):
        api = await make(
            netvalve_not_found_grace_seconds=0.2,
            netvalve_reverse_extra_charges=True,
            unknown_outcome_budget_seconds=0,
        )
        payment_id, late = await late_sale_after_a_paid_retry(api, gateway)

        await deliver(api, await sent(receiver, late["transactionId"], "PURCHASED"))
        await process(api)

        refunds = [
            t
            for t in await api.sandbox_transactions(payment_id)
            if t["transactionType"] == "REFUND"
        ]
        assert [refund["amount"] for refund in refunds] == [44.0]
        await deliver(api, await sent(receiver, refunds[0]["transactionId"], "REFUNDED"))
        rows = await process(api)
        assert "already in the ledger" in last_error(rows, refunds[0]["transactionId"])
        final = await status(api, payment_id)
        assert (final["state"], final["captured_amount"], final["refunded_amount"]) == (
            "captured",
            "44.00",
            "0.00",
        )
        assert final["extra_charged_amount"] == "0.00"
        await api.assert_ledger_matches_gateway(payment_id)

    async def test_the_sweep_finds_a_late_sale_that_sent_no_webhook(
        self, make: Any, gateway: SandboxBackend
    ):
        api = await make(
            netvalve_not_found_grace_seconds=0.2,
            reconcile_recheck_not_found_seconds=0,
            unknown_outcome_budget_seconds=0,
        )
        payment_id, _ = await late_sale_after_a_paid_retry(api, gateway)
        events = build_gateway_event_service(api.resources)

        assert await events.recheck_not_found() == 1
        assert await events.recheck_not_found() == 0  # looked at once

        after = await status(api, payment_id)
        assert after["extra_charged_amount"] == "44.00"
        await api.assert_ledger_matches_gateway(payment_id)


# --- 5. one poisoned event froze a payment ---------------------------------------------------


class TestNoFrozenPayment:
    async def test_an_event_naming_another_payments_transaction_changes_nothing(
        self, make: Any, receiver: Receiver
    ):
        api = await make()
        session_a = await api.medusa_session()
        a = (await pay(api, session_a.session_id, DECLINE_CARD)).json()["payment"]
        b = (await pay(api, (await api.medusa_session()).session_id)).json()
        poisoned = await sent(receiver, b["transaction_id"], "PURCHASED")
        poisoned["data"]["clientOrderId"] = f"{uuid.UUID(a['id']).hex}-1"

        await deliver(api, poisoned)
        [row] = await process(api)

        assert row["status"] == "ignored"
        assert "is not NetValve's" in row["last_error"]
        refreshed = await api.get("/status", {"payment_id": a["id"], "refresh": "true"})
        assert (refreshed.status_code, refreshed.json()["in_progress"]) == (200, None)
        paid = await pay(api, session_a.session_id)
        assert (paid.status_code, paid.json()["state"]) == (200, "captured"), paid.text
        assert (await status(api, b["id"]))["state"] == "captured"
        await api.assert_ledger_matches_gateway(a["id"])
        await api.assert_ledger_matches_gateway(b["id"])

    async def test_a_payment_an_earlier_version_froze_is_freed_by_a_status_refresh(self, make: Any):
        api = await make()
        session = await api.medusa_session()
        declined = (await pay(api, session.session_id, DECLINE_CARD)).json()["payment"]
        # What the old webhook path left behind: a claim with an attempt that was never sent.
        attempt = uuid.uuid4()
        await api.medusa.execute(
            "INSERT INTO payment_attempts (id, payment_id, operation, amount_minor, reason) "
            "VALUES ($1, $2, 'sale', 4400, 'webhook')",
            attempt,
            uuid.UUID(declined["id"]),
        )
        await api.medusa.execute(
            "UPDATE payments SET in_flight = 'sale', in_flight_attempt_id = $1 WHERE id = $2",
            attempt,
            uuid.UUID(declined["id"]),
        )

        refreshed = await api.get("/status", {"payment_id": declined["id"], "refresh": "true"})

        assert refreshed.status_code == 200, refreshed.text
        assert (refreshed.json()["in_progress"], refreshed.json()["state"]) == (
            None,
            "requires_payment",
        )
        paid = await pay(api, session.session_id)
        assert (paid.status_code, paid.json()["state"]) == (200, "captured"), paid.text
        await api.assert_ledger_matches_gateway(declined["id"])

    async def test_an_event_that_cannot_be_applied_is_bounded_and_resolvable(
        self, make: Any, receiver: Receiver, gateway: SandboxBackend
    ):
        api = await make(webhook_max_attempts=3)
        paid = (await pay(api, (await api.medusa_session()).session_id)).json()
        event = await sent(receiver, paid["transaction_id"], "PURCHASED")
        await gateway.admin.post(
            "/_sandbox/faults", json={"path": "/transaction", "kind": "http_error"}
        )
        exhausted = metrics.WEBHOOK_PROCESSED.labels("exhausted")._value.get()

        await deliver(api, event)
        rows = await process(api, rounds=5)
        await gateway.admin.delete("/_sandbox/faults")

        [row] = rows
        assert row["status"] == "exhausted", row
        assert row["last_error"].startswith("gave up after 3 tries")
        assert metrics.WEBHOOK_PROCESSED.labels("exhausted")._value.get() == exhausted + 1
        resolved = await api.http.patch(
            f"/api/v1/netvalve/webhook-events/{row['id']}",
            json={"status": "ignored", "notes": "checked by hand: already captured"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert (resolved.status_code, resolved.json()["status"]) == (200, "ignored")
        assert await process(api) == [{**row, "status": "ignored"}]
        assert (await status(api, paid["id"]))["state"] == "captured"
        await api.assert_ledger_matches_gateway(paid["id"])
