"""Settlement integrity under attack: forged, late and racing input, found by attacking the
design of test_settlement_integrity.py on purpose. Each test failed before its fix."""

import asyncio
import copy
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from app.api.deps import (
    build_extra_charge_service,
    build_gateway_event_service,
    build_webhook_service,
)
from app.clients.netvalve import Approved, read_record
from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import PaymentAttempt
from app.services.netvalve.reconciliation import _child_done
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.gateway import DECLINE_CARD
from tests.fixtures.settlement import (
    deliver,
    late_sale_after_a_paid_retry,
    pay,
    process,
    sent,
    status,
    until,
)
from tests.fixtures.webhooks import WEBHOOK_HEADER, WEBHOOK_SECRET

pytestmark = pytest.mark.asyncio
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _resources(api: Any) -> Any:
    return api.resources


async def _extra_charge(api: Any, gateway: Any, receiver: Any) -> tuple[str, dict[str, Any]]:
    """A payment paid by a retry, whose first sale NetValve processed late: an extra charge."""
    payment_id, late = await late_sale_after_a_paid_retry(api, gateway)
    await deliver(api, await sent(receiver, late["transactionId"], "PURCHASED"))
    await process(api)
    charge = await _charge(api, payment_id)
    assert charge["status"] == "open"
    return payment_id, charge


async def _extra(api: Any, gateway: Any, receiver: Any) -> tuple[str, dict[str, Any]]:
    payment_id, late = await late_sale_after_a_paid_retry(api, gateway)
    await deliver(api, await sent(receiver, late["transactionId"], "PURCHASED"))
    await process(api)
    return payment_id, late


async def _charge(api: Any, payment_id: str) -> dict[str, Any]:
    listed = await api.http.get(
        "/api/v1/netvalve/extra-charges", params={"payment_id": payment_id}, headers=ADMIN
    )
    [charge] = listed.json()["items"]
    return dict(charge)


async def test_a_chargeback_on_an_extra_charge_is_recorded(make: Any, receiver: Any, gateway: Any):
    api = await make(netvalve_not_found_grace_seconds=0.2, unknown_outcome_budget_seconds=0)
    payment_id, late = await _extra(api, gateway, receiver)
    disputed = await gateway.admin.post(
        f"/_sandbox/transactions/{late['transactionId']}/chargeback"
    )
    assert disputed.status_code == 200
    await deliver(api, await sent(receiver, late["transactionId"], "CHARGEBACK"))
    rows = await process(api)
    [row] = [r for r in rows if r["event_name"] == "CHARGEBACK"]
    charge = await _charge(api, payment_id)
    after = await status(api, payment_id)
    # The bank took the extra sale back: no longer held, and never refunded on top.
    assert (row["status"], charge["status"], after["extra_charged_amount"]) == (
        "processed",
        "reversed",
        "0.00",
    ), (row, charge)
    assert after["charged_back_amount"] == "0.00"  # the payment's own sale is not disputed
    reversed_ = await api.http.post(
        f"/api/v1/netvalve/extra-charges/{charge['id']}/reverse", headers=ADMIN
    )
    assert reversed_.json()["status"] == "reversed"
    refunds = [
        t for t in await api.sandbox_transactions(payment_id) if t["transactionType"] == "REFUND"
    ]
    assert refunds == []


async def test_an_extra_charge_refunded_in_two_parts_is_no_longer_held(
    make: Any, receiver: Any, gateway: Any
):
    api = await make(netvalve_not_found_grace_seconds=0.2, unknown_outcome_budget_seconds=0)
    payment_id, late = await _extra(api, gateway, receiver)
    for _ in range(2):
        part = await gateway.client.refund(late["transactionId"], Decimal("22.00"))
        assert isinstance(part, Approved)
        await deliver(api, await sent(receiver, part.transaction_id or 0, "REFUNDED"))
    rows = await process(api)
    after = await status(api, payment_id)
    charge = await _charge(api, payment_id)
    assert (after["extra_charged_amount"], charge["status"]) == ("0.00", "reversed"), (
        after["extra_charged_amount"],
        charge["status"],
        [r["last_error"] for r in rows],
    )
    await api.assert_ledger_matches_gateway(payment_id)


async def _refunds(api: Any, payment_id: str) -> list[dict[str, Any]]:
    return [
        t for t in await api.sandbox_transactions(payment_id) if t["transactionType"] == "REFUND"
    ]


async def test_the_reversals_webhook_landing_mid_reversal_is_not_overwritten(
    make: Any, receiver: Any, gateway: Any
):
    """Our refund of an extra charge is processed at NetValve but its answer is lost; its
    REFUNDED webhook is applied while the reversal is still waiting for that answer."""
    api = await make(netvalve_not_found_grace_seconds=0.2, unknown_outcome_budget_seconds=0)
    payment_id, charge = await _extra_charge(api, gateway, receiver)
    await gateway.fault("/refund", "hang", when="after", hang_seconds=1.0)

    reversing = asyncio.create_task(
        api.http.post(f"/api/v1/netvalve/extra-charges/{charge['id']}/reverse", headers=ADMIN)
    )

    async def refunded() -> bool:
        return bool(await _refunds(api, payment_id))

    await until(refunded, "NetValve to process the reversal")
    [refund] = await _refunds(api, payment_id)
    await deliver(api, await sent(receiver, refund["transactionId"], "REFUNDED"))
    await process(api)
    mid = await status(api, payment_id)
    assert mid["extra_charged_amount"] == "0.00"  # the webhook reversed it
    answer = await reversing

    after = await status(api, payment_id)
    listed = await api.http.get(
        "/api/v1/netvalve/extra-charges", params={"payment_id": payment_id}, headers=ADMIN
    )
    [current] = listed.json()["items"]
    # NetValve holds one refund of the extra sale: the charge is reversed, nothing held.
    assert (current["status"], after["extra_charged_amount"]) == ("reversed", "0.00"), (
        answer.json(),
        current,
        after["extra_charged_amount"],
    )
    await api.assert_ledger_matches_gateway(payment_id)


async def test_a_reverse_retried_after_its_webhook_landed_changes_nothing_more(
    make: Any, receiver: Any, gateway: Any
):
    api = await make(netvalve_not_found_grace_seconds=0.2, unknown_outcome_budget_seconds=0)
    payment_id, charge = await _extra_charge(api, gateway, receiver)
    await gateway.fault("/refund", "hang", when="after", hang_seconds=1.0, times=1)

    reversing = asyncio.create_task(
        api.http.post(f"/api/v1/netvalve/extra-charges/{charge['id']}/reverse", headers=ADMIN)
    )

    async def refunded() -> bool:
        return bool(await _refunds(api, payment_id))

    await until(refunded, "NetValve to process the reversal")
    [refund] = await _refunds(api, payment_id)
    await deliver(api, await sent(receiver, refund["transactionId"], "REFUNDED"))
    await process(api)
    await reversing
    overwritten = await api.http.get(
        "/api/v1/netvalve/extra-charges", params={"payment_id": payment_id}, headers=ADMIN
    )
    assert overwritten.json()["items"][0]["status"] == "reversed"  # not overwritten

    again = await api.http.post(
        f"/api/v1/netvalve/extra-charges/{charge['id']}/reverse", headers=ADMIN
    )
    third = await api.http.post(
        f"/api/v1/netvalve/extra-charges/{charge['id']}/reverse", headers=ADMIN
    )
    assert len(await _refunds(api, payment_id)) == 1  # NetValve refunded the extra sale once
    assert (again.status_code, third.status_code, third.json().get("status")) == (
        200,
        200,
        "reversed",
    )
    assert (await status(api, payment_id))["extra_charged_amount"] == "0.00"
    await api.assert_ledger_matches_gateway(payment_id)


async def test_two_concurrent_reverses_refund_once(make: Any, receiver: Any, gateway: Any):
    api = await make(netvalve_not_found_grace_seconds=0.2, unknown_outcome_budget_seconds=0)
    payment_id, charge = await _extra_charge(api, gateway, receiver)
    await gateway.fault("/refund", "latency", latency_ms=300)
    answers = await asyncio.gather(
        *(
            api.http.post(f"/api/v1/netvalve/extra-charges/{charge['id']}/reverse", headers=ADMIN)
            for _ in range(3)
        )
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    await asyncio.sleep(0.5)
    assert len(await _refunds(api, payment_id)) == 1
    after = await status(api, payment_id)
    assert after["extra_charged_amount"] == "0.00"
    await api.assert_ledger_matches_gateway(payment_id)


async def test_a_reversal_cut_short_is_resumed_by_the_sweep(make: Any, receiver: Any, gateway: Any):
    """The worker auto-reverses an extra charge and is stopped (shutdown past the grace, or a
    crash) while the refund is on its way: once its lease has passed, the sweep finishes it."""
    api = await make(
        netvalve_not_found_grace_seconds=0.2,
        unknown_outcome_budget_seconds=0,
        netvalve_reverse_extra_charges=True,
    )
    payment_id, late = await late_sale_after_a_paid_retry(api, gateway)
    await gateway.fault("/refund", "hold")
    await deliver(api, await sent(receiver, late["transactionId"], "PURCHASED"))
    service = build_webhook_service(api.resources)
    worker = asyncio.create_task(service.process_due(10))

    async def charge_reversing() -> bool:
        rows = await api.medusa.fetch("SELECT status FROM extra_charges")
        return [row["status"] for row in rows] == ["reversing"]

    await until(charge_reversing, "the reversal to be claimed")
    await asyncio.sleep(0.2)
    worker.cancel()  # the worker stops (shutdown past its grace period)
    with pytest.raises(asyncio.CancelledError):
        await worker
    await gateway.admin.delete("/_sandbox/faults")
    await gateway.admin.post("/_sandbox/faults/release")  # the held refund is dropped/finished

    rows = await process(api)  # the event was handed back; the worker runs again
    await api.medusa.execute(
        "UPDATE extra_charges SET updated_at = now() - interval '5 minutes'"
    )  # the reversal's lease has passed
    assert await build_extra_charge_service(_resources(api)).resume_reversals() == 1
    charge = await _charge(api, payment_id)
    after = await status(api, payment_id)
    refunds = await _refunds(api, payment_id)
    assert (charge["status"], len(refunds), after["extra_charged_amount"]) == (
        "reversed",
        1,
        "0.00",
    ), (rows, charge, refunds, after["extra_charged_amount"])
    await api.assert_ledger_matches_gateway(payment_id)


async def test_two_workers_apply_a_late_sale_once(make: Any, receiver: Any, gateway: Any):
    api = await make(netvalve_not_found_grace_seconds=0.2, unknown_outcome_budget_seconds=0)
    payment_id, late = await late_sale_after_a_paid_retry(api, gateway)
    event = await sent(receiver, late["transactionId"], "PURCHASED")
    for _ in range(4):
        event["data"]["traceId"] = str(uuid.uuid4())
        await deliver(api, event)
    workers = [build_webhook_service(_resources(api)) for _ in range(4)]
    await asyncio.gather(*(worker.process_due(1) for worker in workers))
    rows = await process(api)
    after = await status(api, payment_id)
    assert (after["captured_amount"], after["extra_charged_amount"]) == ("44.00", "44.00"), rows
    await api.assert_ledger_matches_gateway(payment_id)


async def test_recheck_racing_the_webhook_applies_the_late_sale_once(
    make: Any, receiver: Any, gateway: Any
):
    api = await make(
        netvalve_not_found_grace_seconds=0.2,
        unknown_outcome_budget_seconds=0,
        reconcile_recheck_not_found_seconds=0,
    )
    payment_id, late = await late_sale_after_a_paid_retry(api, gateway)
    await deliver(api, await sent(receiver, late["transactionId"], "PURCHASED"))
    events = build_gateway_event_service(_resources(api))
    worker = build_webhook_service(_resources(api))
    await asyncio.gather(events.recheck_not_found(), worker.process_due(5))
    await process(api)
    after = await status(api, payment_id)
    assert after["extra_charged_amount"] == "44.00"
    await api.assert_ledger_matches_gateway(payment_id)


async def test_two_equal_refunds_without_transaction_id_processed_concurrently(
    make: Any, receiver: Any, gateway: Any
):
    """Two different refunds of 30.00 made at NetValve, whose events carry no transactionId,
    processed by two workers at once."""
    api = await make()
    paid = (await pay(api, (await api.medusa_session(amount="100.00")).session_id)).json()
    refunds = []
    for _ in range(2):
        outside = await gateway.client.refund(paid["transaction_id"], Decimal("30.00"))
        assert isinstance(outside, Approved)
        refunds.append(outside.transaction_id or 0)
    for refund in refunds:
        event = await sent(receiver, refund, "REFUNDED")
        del event["data"]["transactionId"]
        await deliver(api, event)
    workers = [build_webhook_service(_resources(api)) for _ in range(2)]
    await asyncio.gather(*(worker.process_due(1) for worker in workers))
    rows = await process(api)  # a twin that lost the race reads the order again
    after = await status(api, paid["id"])
    assert after["refunded_amount"] == "60.00", rows
    await api.assert_ledger_matches_gateway(paid["id"])


async def test_a_late_sale_for_an_old_cart_amount_does_not_pay_the_new_amount(
    make: Any, receiver: Any, gateway: Any
):
    """The first sale (44.00) is lost and given up; the cart grows to 50.00 and the shopper's
    retry is declined; then NetValve processes the 44.00 sale after all."""
    api = await make(netvalve_not_found_grace_seconds=0.2, unknown_outcome_budget_seconds=0)
    session = await api.medusa_session(amount="44.00")
    await gateway.fault("/sale", "late", status=502)
    lost = await pay(api, session.session_id)
    payment_id = lost.json()["id"]
    await asyncio.sleep(0.3)
    assert (await status(api, payment_id, refresh=True))["state"] == "requires_payment"
    await api.medusa.execute(
        "UPDATE payment_session SET amount = 50, raw_amount = $2::jsonb WHERE id = $1",
        session.session_id,
        json.dumps({"value": "50", "precision": 20}),
    )
    declined = await pay(api, session.session_id, DECLINE_CARD)
    assert declined.status_code == 402, declined.text
    assert declined.json()["payment"]["amount"] == "50.00"
    await gateway.admin.post("/_sandbox/faults/release")
    [late] = [
        t for t in await api.sandbox_transactions(payment_id) if t["responseCode"] == "GTW_1000"
    ]
    await deliver(api, await sent(receiver, late["transactionId"], "PURCHASED"))
    rows = await process(api)
    after = await status(api, payment_id)
    # A 44.00 sale does not pay a 50.00 payment: it is money held beyond it, flagged.
    assert (after["state"], after["captured_amount"], after["extra_charged_amount"]) == (
        "requires_payment",
        "0.00",
        "44.00",
    ), rows
    await api.assert_ledger_matches_gateway(payment_id)


async def test_forged_events_move_nothing(make: Any, receiver: Any, gateway: Any):
    api = await make()
    a = (await pay(api, (await api.medusa_session(amount="100.00")).session_id)).json()
    b = (await pay(api, (await api.medusa_session(amount="100.00")).session_id)).json()
    d = (await pay(api, (await api.medusa_session()).session_id, DECLINE_CARD)).json()["payment"]
    refund_b = await gateway.client.refund(b["transaction_id"], Decimal("10.00"))
    assert isinstance(refund_b, Approved)
    sale_a = await sent(receiver, a["transaction_id"], "PURCHASED")
    ref_b = await sent(receiver, refund_b.transaction_id or 0, "REFUNDED")
    a_order = f"{uuid.UUID(a['id']).hex}-1"
    d_order = f"{uuid.UUID(d['id']).hex}-1"

    def forged(base: dict[str, Any], name: str | None = None, **data: Any) -> dict[str, Any]:
        event = copy.deepcopy(base)
        if name:
            event["eventName"] = name
        for key, value in data.items():
            if value is ...:
                event["data"].pop(key, None)
            else:
                event["data"][key] = value
        event["data"]["traceId"] = str(uuid.uuid4())
        return event

    events = [
        forged(ref_b, clientOrderId=a_order),  # B's refund pointed at A
        forged(ref_b, clientOrderId=a_order, transactionId=str(refund_b.transaction_id)),
        forged(ref_b, clientOrderId=a_order, transactionId=...),  # A's order has no refund
        forged(sale_a, "REFUNDED", transactionType="REFUND"),
        forged(sale_a, "CAPTURED"),
        forged(sale_a, "CANCELLED"),
        forged(sale_a, clientOrderId=d_order),  # A's sale pointed at declined D
        forged(sale_a, clientOrderId=d_order, transactionId=...),
        forged(sale_a, clientOrderId=d_order, amount="1e2"),
        forged(sale_a, amount="100.001"),
        forged(sale_a, amount="-100.00"),
        forged(sale_a, currency="usd"),
        forged(sale_a, transactionId=-1),
        forged(sale_a, transactionId=2**70),
        forged(sale_a, transactionId="1e3"),
        forged(sale_a, "AUTHORISED"),
        forged(ref_b, "CHARGEBACK", transactionId=b["transaction_id"], amount="10.00"),
        forged(sale_a, "CHARGEBACK", amount="100.00"),  # no chargeback on the record
    ]
    for event in events:
        await deliver(api, event)
    rows = await process(api)
    after = {p["id"]: await status(api, p["id"]) for p in (a, b, d)}
    assert after[a["id"]]["state"] == "captured"
    await api.assert_ledger_matches_gateway(a["id"])
    await api.assert_ledger_matches_gateway(d["id"])
    assert after[a["id"]]["refunded_amount"] == "0.00"
    assert after[a["id"]]["charged_back_amount"] == "0.00"
    assert after[d["id"]]["state"] == "requires_payment"
    assert after[b["id"]]["charged_back_amount"] == "0.00"
    assert all(row["status"] in ("ignored", "processed") for row in rows), rows
    # B's refund is real: applying it to B (the only row that may be processed) is right.
    assert after[b["id"]]["refunded_amount"] in ("0.00", "10.00")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
async def test_a_nan_amount_is_stored_or_rejected_never_500(make: Any, token: str):
    api = await make()
    raw = (
        '{"eventName": "PURCHASED", "data": {"transactionId": 123, "clientOrderId": "x-1", '
        f'"amount": {token}, "traceId": "t"}}}}'
    ).encode()
    response = await api.http.post(
        "/api/v1/netvalve/webhook",
        content=raw,
        headers={"Content-Type": "application/json", WEBHOOK_HEADER: WEBHOOK_SECRET},
    )
    assert response.status_code == 400, response.text
    row = await api.medusa.fetchrow("SELECT status, raw_body FROM webhook_events")
    assert row is not None
    assert (row["status"], bytes(row["raw_body"])) == ("rejected", raw)


@pytest.mark.parametrize("amount", ["forty-four", {"value": "44.00"}, [44], True])
async def test_an_unreadable_amount_is_ignored_not_retried_to_exhaustion(
    make: Any, receiver: Any, amount: Any
):
    api = await make(webhook_max_attempts=3)
    paid = (await pay(api, (await api.medusa_session()).session_id)).json()
    event = await sent(receiver, paid["transaction_id"], "PURCHASED")
    event["data"]["amount"] = amount
    await deliver(api, event)
    [row] = await process(api)
    assert row["status"] == "ignored", row
    assert (await status(api, paid["id"]))["state"] == "captured"
    await api.assert_ledger_matches_gateway(paid["id"])


def _record(**child: Any) -> Any:
    body = {
        "netvalveID": 100,
        "transactionType": "SALE",
        "status": "Settled",
        "amount": 100.00,
        "currency": "EUR",
        "responseCode": "GTW_1000",
        "responseCodeType": "APPROVED",
        "transactions": [{"transactionId": 101, "amount": 30.00, **child}],
    }
    return read_record(Approved(operation="get_transaction", http_status=200, body=body))


def _payment(**changes: Any) -> Payment:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "currency": "EUR",
        "state": PaymentState.CAPTURED,
        "amount_minor": 10000,
        "authorized_minor": 10000,
        "captured_minor": 10000,
        "refunded_minor": 0,
        "transaction_id": 100,
        "settled_transaction_id": 100,
    }
    values.update(changes)
    return Payment(**values)


@pytest.mark.parametrize("operation", [Operation.REFUND, Operation.CAPTURE])
@pytest.mark.parametrize("code_type", ["SOFT DECLINE", "HARD DECLINE", "PENDING"])
async def test_a_declined_child_on_the_record_settles_nothing(operation: Operation, code_type: str):
    """A capture or refund whose answer was lost is settled from its parent's record: a
    declined (or pending) child there is no money moved."""
    kind = "REFUND" if operation is Operation.REFUND else "CAPTURE"
    record = _record(transactionType=kind, responseCode="BNK_2005", responseCodeType=code_type)
    attempt = PaymentAttempt(id=uuid.uuid4(), operation=operation, amount_minor=3000)
    payment = (
        _payment()
        if operation is Operation.REFUND
        else _payment(state=PaymentState.AUTHORIZED, captured_minor=0, settled_transaction_id=None)
    )

    assert _child_done(record, attempt, payment) is None
    approved = _record(transactionType=kind, responseCode="GTW_1000", responseCodeType="APPROVED")
    assert _child_done(approved, attempt, payment) is not None
