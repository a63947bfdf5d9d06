"""NetValve's rules for moving a transaction on: sale and authorization, then capture, cancel and
refund, and the controls that resolve a pending payment or charge one back.

Each function validates what it can before taking `store.lock`, then decides and changes state
under it, and answers with the status and body NetValve would send.
"""

from decimal import Decimal
from typing import Any

from app.sandbox import cards, validation
from app.sandbox.events import webhook_data
from app.sandbox.hosted import live_token
from app.sandbox.lookups import record_of
from app.sandbox.records import Card, Transaction
from app.sandbox.serialization import response
from app.sandbox.store import SandboxStore
from app.sandbox.validation import ValidationErrors
from app.sandbox.wire import Answer, field_error, refusal

NOT_FOUND = ("GTW_2103", "Reference transaction not found.")


async def pay(store: SandboxStore, kind: str, body: dict[str, Any]) -> Answer:
    """`kind` is SALE or AUTHORIZATION."""
    try:
        amount = validation.amount(body)
        currency = validation.currency(body)
        routing = validation.routing(body)
        client_order_id = validation.client_order_id(body)
        async with store.lock:
            # Checked before the token is spent, so a refused duplicate leaves it usable.
            if client_order_id is not None and client_order_id in store.client_order_ids:
                return refusal("GTW_2065", "Duplicate clientOrderId.")
            card = _card_for_payment(store, body)
            outcome = cards.outcome_for(card.number, amount)
            channel = "HOSTED_PAYMENT_FIELDS" if body.get("paymentToken") else "API"
            transaction = store.add_payment(
                kind, amount, currency, outcome, client_order_id, routing, card, channel
            )
            store.emit(transaction)
            return 200, response(transaction, store.client_id)
    except ValidationErrors as exc:
        return 400, exc.errors


def _card_for_payment(store: SandboxStore, body: dict[str, Any]) -> Card:
    payment_type = body.get("paymentType")
    if payment_type is not None and payment_type not in {"CARD", "WALLET", "TOKEN"}:
        raise ValidationErrors(
            [field_error("GTW_2093", "paymentType", "Must be one of CARD, WALLET, TOKEN.")]
        )
    if body.get("paymentToken"):
        token = live_token(store, body["paymentToken"])
        if token.card is None:
            raise ValidationErrors(
                [field_error("GTW_2063", "paymentToken", "Payment token has no card.")]
            )
        token.used = True
        return token.card
    return validation.card(body)


async def capture(store: SandboxStore, body: dict[str, Any]) -> Answer:
    try:
        transaction_id = validation.transaction_id(body)
        amount = validation.amount(body)
        final = bool((body.get("captureOptions") or {}).get("finalCapture"))
        async with store.lock:
            parent = store.settle_pending(store.transactions.get(transaction_id))
            if parent is None:
                return refusal(*NOT_FOUND, 404)
            refused = _capture_refusal(store, parent, amount, final)
            if refused:
                return refused
            parent.status = "Settled" if amount == parent.amount else "PARTIALLY_SETTLED"
            child = store.add_child(parent, "CAPTURE", amount, "Settled")
            store.emit(child)
            return 200, response(child, store.client_id)
    except ValidationErrors as exc:
        return 400, exc.errors


def _capture_refusal(
    store: SandboxStore, parent: Transaction, amount: Decimal, final: bool
) -> Answer | None:
    refused = _state_refusal(parent)
    if refused:
        return refused
    if amount > parent.amount:
        return refusal("GTW_2124", "Partial capture amount exceeds the authorized amount.")
    if amount < parent.amount and not store.rules.partial_capture_enabled:
        return refusal("GTW_2123", "Partial capture not allowed.")
    if amount < parent.amount and not final:
        return refusal("GTW_2038", "Capture amount must equal the authorized amount.")
    return None


async def cancel(store: SandboxStore, body: dict[str, Any]) -> Answer:
    try:
        transaction_id = validation.transaction_id(body)
        async with store.lock:
            parent = store.settle_pending(store.transactions.get(transaction_id))
            if parent is None:
                return refusal(*NOT_FOUND, 404)
            refused = _state_refusal(parent)
            if refused:
                return refused
            parent.status = "Cancelled"
            child = store.add_child(parent, "CANCEL", parent.amount, "Cancelled")
            store.emit(child)
            return 200, response(child, store.client_id)
    except ValidationErrors as exc:
        return 400, exc.errors


def _state_refusal(parent: Transaction) -> Answer | None:
    """Why a capture or cancel cannot act on `parent`; None for a live authorization."""
    if parent.outcome.pending:
        return refusal("GTW_2049", "Transaction pending.")
    if not parent.outcome.approved:
        return refusal("GTW_2100", "Operation not allowed for this transaction.")
    if parent.type == "SALE" or parent.status in {"Settled", "PARTIALLY_SETTLED"}:
        return refusal("GTW_2046", "Transaction already captured.")
    if parent.status == "Cancelled":
        return refusal("GTW_2047", "Transaction already cancelled.")
    if parent.type != "AUTHORIZATION":
        return refusal("GTW_2100", "Operation not allowed for this transaction.")
    return None


async def refund(store: SandboxStore, body: dict[str, Any]) -> Answer:
    try:
        transaction_id = validation.transaction_id(body)
        requested = validation.optional_amount(body)
        async with store.lock:
            target = _refund_target(store, store.transactions.get(transaction_id))
            if isinstance(target, tuple):
                return target
            refused = _refund_refusal(store, target, requested)
            if refused:
                return refused
            amount = target.amount - target.refunded if requested is None else requested
            target.refunded += amount
            target.status = "Refunded" if target.refunded == target.amount else "Partially Refunded"
            child = store.add_child(target, "REFUND", amount, "Refunded")
            store.emit(child)
            return 200, response(child, store.client_id)
    except ValidationErrors as exc:
        return 400, exc.errors


def _refund_target(store: SandboxStore, found: Transaction | None) -> Transaction | Answer:
    found = store.settle_pending(found)
    if found is None:
        return refusal(*NOT_FOUND, 404)
    if found.type == "AUTHORIZATION":
        # Refunding an authorization means refunding its capture, if it has one.
        captures = [child for child in store.children(found) if child.type == "CAPTURE"]
        if not captures:
            return refusal("GTW_2100", "Refund needs a settled sale or capture.")
        found = captures[-1]
    if found.type not in {"SALE", "CAPTURE"} or not found.outcome.approved:
        return refusal("GTW_2100", "Refund needs a settled sale or capture.")
    return found


def _refund_refusal(
    store: SandboxStore, target: Transaction, requested: Decimal | None
) -> Answer | None:
    remaining = target.amount - target.refunded
    if remaining <= 0:
        return refusal("GTW_2045", "Transaction already refunded.")
    amount = remaining if requested is None else requested
    if amount < remaining and not store.rules.partial_refund_enabled:
        return refusal("GTW_2107", "Partial refund not allowed.")
    if amount > remaining:
        return refusal("GTW_2108", "Refund amount exceeds the remaining amount.")
    return None


async def resolve_pending(store: SandboxStore, transaction_id: int, approve: bool) -> Answer:
    async with store.lock:
        transaction = store.transactions.get(transaction_id)
        if transaction is None or not transaction.outcome.pending:
            return refusal("GTW_2103", "No pending transaction with that id.", 404)
        store.finish_pending(transaction, approve)
        return 200, response(transaction, store.client_id)


async def charge_back(store: SandboxStore, transaction_id: int, amount: Decimal | None) -> Answer:
    """The cardholder's bank disputes a settled sale or capture (a control, not NetValve's
    API): recorded in the transaction's chargebackData, then a CHARGEBACK webhook."""
    async with store.lock:
        transaction = store.transactions.get(transaction_id)
        if transaction is None or transaction.type not in {"SALE", "CAPTURE"}:
            return refusal("GTW_2103", "No settled sale or capture with that id.", 404)
        disputed = transaction.amount if amount is None else amount
        transaction.chargebacks.append(disputed)
        data = webhook_data(transaction, store.client_id)
        data.update(
            amount=disputed, chargebackTransactionType="Chargeback", chargebackSource="CB-Alert"
        )
        store.publish("CHARGEBACK", data)
        return 200, record_of(store, transaction)
