"""Issue 13, section 3: a real Medusa 2.21.2 store checks out through this service.

Everything goes through Medusa's own store API (as a storefront) and admin API (as a merchant);
the service's ledger is read through its GET /status, NetValve's through the sandbox's records.
Each test prints a line of evidence (`-s` shows them; -rA in the summary).
"""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.fixtures.gateway import APPROVE_CARD, DECLINE_CARD
from tests.medusa.conftest import (
    MEDUSA_WEBHOOK_SECRET,
    MedusaStack,
    evidence,
    tokenize,
    wait_for,
)

pytestmark = pytest.mark.medusa

HOOK = "/hooks/payment/netvalve_netvalve"
OTHER_SECRET = "whsec_" + "QmFkU2VjcmV0QmFkU2VjcmV0QmFkU2VjcmV0"
# Medusa's log line for each notification its provider refused, and for each it hands over.
REJECTED = r"^MedusaError: medusa-payment-netvalve: the notification failed verification: "
HANDED = r"Processing payment\.webhook_received which has"
# After a replay's ledger read: time for the process-payment workflow it starts to finish.
REPLAY_WORKFLOW_WAIT = 3.0


def money(value: Any) -> Decimal:
    return Decimal(str(value))


def pay_and_complete(
    stack: MedusaStack, cart: dict[str, Any], card: str = APPROVE_CARD, **session: Any
) -> tuple[dict[str, Any], httpx.Response]:
    """A NetValve payment session, the card bound to its token at the sandbox's hosted fields
    (the browser's part), then the cart completed."""
    payment_session = stack.store.payment_session(cart, **session)
    assert payment_session["data"]["payment_token"], payment_session
    assert payment_session["data"]["script_src"], payment_session
    tokenize(stack.sandbox_url, payment_session["data"]["payment_token"], card)
    return payment_session, stack.store.complete(cart["id"])


def order_from(completed: httpx.Response) -> str:
    assert completed.status_code == 200, completed.text
    body = completed.json()
    assert body["type"] == "order", body
    return str(body["order"]["id"])


def assert_not_completed(stack: MedusaStack, cart_id: str) -> None:
    assert stack.order_of_cart(cart_id) is None
    assert stack.store.get_cart(cart_id)["completed_at"] is None


def captured_total(payment: dict[str, Any]) -> Decimal:
    return sum((money(c["amount"]) for c in payment["captures"]), Decimal(0))


def netvalve_record(stack: MedusaStack, payment_id: str) -> list[tuple[str, str, str]]:
    """What NetValve (the sandbox) holds for the ledger's payment: type, amount, status."""
    return [
        (t["transactionType"], f"{money(t['amount']):.2f}", t["status"])
        for t in stack.sandbox_transactions(uuid.UUID(payment_id).hex)
    ]


def refunded_total(payment: dict[str, Any]) -> Decimal:
    return sum((money(r["amount"]) for r in payment["refunds"]), Decimal(0))


def test_sale_mode_checkout_creates_an_order_captured_for_the_cart_total(sale: MedusaStack):
    cart = sale.store.cart("tee")
    assert money(cart["total"]) == Decimal("25")

    session, completed = pay_and_complete(sale, cart)

    order_id = order_from(completed)
    ledger = sale.gateway.status(session["id"])
    assert (ledger["state"], ledger["status"]) == ("captured", "captured"), ledger
    assert ledger["captured_amount"] == "25.00"
    assert ledger["cart_id"] == cart["id"]
    order = sale.admin.order(order_id)
    assert order["payment_status"] == "captured", order
    [payment] = sale.admin.payments(order)
    assert payment["captured_at"] is not None
    assert captured_total(payment) == money(order["total"]) == Decimal("25")
    assert payment["data"]["payment_token"] == session["data"]["payment_token"]
    netvalve = netvalve_record(sale, ledger["id"])
    assert netvalve == [("SALE", "25.00", "Settled")]
    evidence(
        "1 sale",
        order=order_id,
        display_id=order["display_id"],
        medusa_payment_status=order["payment_status"],
        medusa_captured=str(captured_total(payment)),
        ledger_state=ledger["state"],
        ledger_captured=ledger["captured_amount"],
        transaction_id=ledger["transaction_id"],
        netvalve=netvalve,
    )


def test_a_declined_card_leaves_the_cart_open_with_the_decline_and_a_new_session_completes(
    sale: MedusaStack,
):
    cart = sale.store.cart("tee")

    declined, completed = pay_and_complete(sale, cart, card=DECLINE_CARD)

    assert not (completed.status_code == 200 and completed.json().get("type") == "order")
    assert_not_completed(sale, cart["id"])
    seen = sale.store.cart_sessions(cart["id"])
    [session] = [s for s in seen if s["id"] == declined["id"]]
    assert "BNK_2005" in json.dumps(session["data"]), session
    assert "Do Not Honour" in json.dumps(session["data"]), session
    ledger = sale.gateway.status(declined["id"])
    assert ledger["state"] == "requires_payment", ledger
    assert ledger["response_code"] == "BNK_2005"

    retried, retry = pay_and_complete(sale, cart, collection_id=declined["payment_collection_id"])

    assert retried["id"] != declined["id"]
    order_id = order_from(retry)
    order = sale.admin.order(order_id)
    assert order["payment_status"] == "captured", order
    assert sale.gateway.status(retried["id"])["captured_amount"] == "25.00"
    evidence(
        "3 decline",
        declined_session=declined["id"],
        complete_answer=(completed.status_code, completed.json().get("type")),
        decline_data=session["data"].get("decline"),
        medusa_session_status=session["status"],
        ledger_after_decline=ledger["state"],
        decline_code=ledger["response_code"],
        order=order_id,
        medusa_payment_status=order["payment_status"],
    )


def test_a_pending_sale_becomes_an_order_when_the_service_settles_it(sale: MedusaStack):
    cart = sale.store.cart("pending")
    assert money(cart["total"]) == Decimal("1002")

    session, completed = pay_and_complete(sale, cart)

    assert completed.status_code == 400, completed.text
    assert_not_completed(sale, cart["id"])
    assert sale.gateway.status(session["id"])["state"] == "pending"
    started = time.monotonic()

    # No further storefront call: the sweep settles it, the notification completes the cart.
    order_id = wait_for("the cart to become an order", lambda: sale.order_of_cart(cart["id"]))

    waited = time.monotonic() - started
    ledger = sale.gateway.status(session["id"])
    assert (ledger["state"], ledger["captured_amount"]) == ("captured", "1002.00"), ledger
    order = wait_for(
        "Medusa to show the payment captured",
        lambda: (o := sale.admin.order(order_id))["payment_status"] == "captured" and o,
    )
    [payment] = sale.admin.payments(order)
    assert captured_total(payment) == money(order["total"]) == Decimal("1002")
    notes = sale.relay.for_session(session["id"])
    assert notes, "no notification reached Medusa"
    assert notes[-1].json["type"] == "payment.captured"
    assert notes[-1].medusa_status == 200
    assert sale.store.get_cart(cart["id"])["completed_at"] is not None
    netvalve = netvalve_record(sale, ledger["id"])
    assert netvalve == [("SALE", "1002.00", "Settled")]
    evidence(
        "4 pending",
        complete_status=completed.status_code,
        order=order_id,
        seconds_to_order=f"{waited:.1f}",
        notifications=[n.json["type"] for n in notes],
        medusa_payment_status=order["payment_status"],
        ledger_state=ledger["state"],
        ledger_captured=ledger["captured_amount"],
        netvalve=netvalve,
    )


def signed(secret: str, body: bytes, *, at: datetime | None = None, msg_id: str | None = None):
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def test_forged_stale_unsigned_and_replayed_notifications_change_nothing(sale: MedusaStack):
    # The service's own notification is kept from Medusa, so the ledger says captured while
    # Medusa's cart is still open: the state a forged "captured" would exploit.
    sale.relay.swallowing = True
    try:
        cart = sale.store.cart("pending")
        session, completed = pay_and_complete(sale, cart)
        assert completed.status_code == 400, completed.text
        wait_for(
            "the service to settle the payment",
            lambda: sale.gateway.status(session["id"])["state"] == "captured",
        )
        genuine = wait_for(
            "the service's notification", lambda: sale.relay.for_session(session["id"])
        )[0]
    finally:
        sale.relay.swallowing = False
    body = genuine.body
    tampered = body.replace(b'"payment.captured"', b'"payment.authorized"')
    assert tampered != body
    forged = [
        ("bad signature", body, signed(OTHER_SECRET, body), "No matching signature found"),
        (
            "stale timestamp",
            body,
            signed(MEDUSA_WEBHOOK_SECRET, body, at=datetime.now(UTC) - timedelta(minutes=10)),
            "Message timestamp too old",
        ),
        ("unsigned", body, {"content-type": "application/json"}, "Missing required headers"),
        ("another body", tampered, genuine.headers, "No matching signature found"),
    ]
    rejected_before = len(sale.medusa.lines(REJECTED))
    hook = httpx.Client(base_url=sale.medusa.url, timeout=10)
    for name, content, headers, _ in forged:
        answer = hook.post(HOOK, content=content, headers=headers)
        assert answer.status_code == 200, (name, answer.text)  # Medusa's route answers at once

    # Medusa hands each to the provider 5 s later; each is rejected, for its own reason.
    rejections = wait_for(
        "the provider to reject the four notifications",
        lambda: (
            (lines := sale.medusa.lines(REJECTED)[rejected_before:]) and len(lines) >= 4 and lines
        ),
    )
    reasons = sorted(line.split("failed verification: ", 1)[1].strip() for line in rejections)
    assert reasons == sorted(reason for *_, reason in forged)
    assert_not_completed(sale, cart["id"])

    # The genuine delivery, byte for byte, is acted on: the rejections above were the checks'.
    answer = hook.post(HOOK, content=body, headers=genuine.headers)
    assert answer.status_code == 200
    order_id = wait_for("the genuine notification", lambda: sale.order_of_cart(cart["id"]))
    wait_for(
        "Medusa to show the payment captured",
        lambda: sale.admin.order(order_id)["payment_status"] == "captured",
    )
    before = snapshot(sale, order_id, session["id"])

    # Replayed: the same id, signature and body twice more (as a retry of the service's or an
    # eavesdropper's copy would be). They pass the signature check, so the provider reads the
    # ledger for each, and Medusa's capture of an already captured payment is a no-op.
    handed = len(sale.medusa.lines(HANDED))
    ledger_reads = sale.gateway.requests_to("/api/v1/netvalve/status")
    for _ in range(2):
        answer = hook.post(HOOK, content=body, headers=genuine.headers)
        assert answer.status_code == 200
    wait_for(
        "Medusa to hand both replays over", lambda: len(sale.medusa.lines(HANDED)) >= handed + 2
    )
    wait_for(
        "the provider to read the ledger for both",
        lambda: sale.gateway.requests_to("/api/v1/netvalve/status") >= ledger_reads + 2,
    )
    time.sleep(REPLAY_WORKFLOW_WAIT)

    assert snapshot(sale, order_id, session["id"]) == before
    assert len(sale.medusa.lines(REJECTED)) == rejected_before + 4
    hook.close()
    evidence(
        "5 notifications",
        rejected={name: reason for name, _, _, reason in forged},
        order_after_genuine=order_id,
        replays=2,
        unchanged=before,
    )


def snapshot(stack: MedusaStack, order_id: str, session_id: str) -> dict[str, Any]:
    """What a notification could change: Medusa's order and payments, the ledger, NetValve."""
    order = stack.admin.order(order_id)
    ledger = stack.gateway.status(session_id)
    return {
        "orders_for_cart": len(
            stack.medusa_rows(
                "SELECT order_id FROM order_cart WHERE cart_id = (SELECT cart_id FROM order_cart"
                " WHERE order_id = $1) AND deleted_at IS NULL",
                order_id,
            )
        ),
        "payment_status": order["payment_status"],
        "payments": [
            (p["id"], str(captured_total(p)), str(refunded_total(p)), len(p["captures"]))
            for p in stack.admin.payments(order)
        ],
        "ledger": (ledger["state"], ledger["captured_amount"], ledger["refunded_amount"]),
        "netvalve_transactions": len(stack.sandbox_transactions(uuid.UUID(ledger["id"]).hex)),
    }


def test_manual_mode_authorizes_then_captures_and_refunds_from_medusas_admin(
    manual: MedusaStack,
):
    cart = manual.store.cart("tee")

    session, completed = pay_and_complete(manual, cart)

    order_id = order_from(completed)
    order = manual.admin.order(order_id)
    assert order["payment_status"] == "authorized", order
    [payment] = manual.admin.payments(order)
    assert payment["captured_at"] is None
    ledger = manual.gateway.status(session["id"])
    assert (ledger["state"], ledger["authorized_amount"]) == ("authorized", "25.00"), ledger
    assert ledger["captured_amount"] == "0.00"
    authorized = dict(ledger)

    manual.admin.call("POST", f"/admin/payments/{payment['id']}/capture", json={})

    ledger = manual.gateway.status(session["id"])
    assert (ledger["state"], ledger["captured_amount"]) == ("captured", "25.00"), ledger
    order = manual.admin.order(order_id)
    assert order["payment_status"] == "captured", order
    [payment] = manual.admin.payments(order)
    assert captured_total(payment) == Decimal("25")
    assert payment["captured_at"] is not None
    captured = dict(ledger)

    manual.admin.call("POST", f"/admin/payments/{payment['id']}/refund", json={"amount": 5})

    ledger = manual.gateway.status(session["id"])
    assert ledger["state"] == "partially_refunded", ledger
    assert (ledger["captured_amount"], ledger["refunded_amount"]) == ("25.00", "5.00")
    order = manual.admin.order(order_id)
    assert order["payment_status"] == "partially_refunded", order
    [payment] = manual.admin.payments(order)
    assert refunded_total(payment) == Decimal("5")
    assert captured_total(payment) == Decimal("25")
    netvalve = netvalve_record(manual, ledger["id"])
    assert netvalve == [
        ("AUTHORIZATION", "25.00", "Settled"),
        ("CAPTURE", "25.00", "Partially Refunded"),
        ("REFUND", "5.00", "Refunded"),
    ]
    evidence(
        "2 manual",
        order=order_id,
        after_complete=(authorized["state"], authorized["authorized_amount"]),
        after_capture=(captured["state"], captured["captured_amount"]),
        after_refund=(ledger["state"], ledger["captured_amount"], ledger["refunded_amount"]),
        medusa_payment_status=order["payment_status"],
        medusa_captured=str(captured_total(payment)),
        medusa_refunded=str(refunded_total(payment)),
        netvalve=netvalve,
    )
