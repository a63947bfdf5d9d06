"""The webhook events a transaction fires: NetValve's event names and the `data` they carry."""

import uuid
from datetime import datetime
from typing import Any

from app.sandbox import cards
from app.sandbox.records import Transaction

_EVENT_NAMES = {
    "SALE": ("PURCHASED", "PURCHASE_FAILED", "PURCHASE_PENDING"),
    "AUTHORIZATION": ("AUTHORISED", "AUTHORISATION_FAILED", "AUTHORISATION_PENDING"),
    "CAPTURE": ("CAPTURED", "CAPTURE_FAILED", "CAPTURE_PENDING"),
    "CANCEL": ("CANCELLED", "CANCELLATION_FAILED", "CANCELLATION_PENDING"),
    "REFUND": ("REFUNDED", "REFUND_FAILED", "REFUND_PENDING"),
}


def event_name(transaction: Transaction) -> str:
    approved, failed, pending = _EVENT_NAMES[transaction.type]
    if transaction.outcome.pending:
        return pending
    return approved if transaction.outcome.approved else failed


def webhook_timestamp() -> str:
    """Webhooks use local time with nanoseconds and no zone (NETVALVE_API.md §4)."""
    now = datetime.now()
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000"


def webhook_data(transaction: Transaction, client_id: str) -> dict[str, Any]:
    outcome = transaction.outcome
    data: dict[str, Any] = {
        "transactionType": transaction.type,
        "clientOrderId": transaction.client_order_id,
        "orderId": str(transaction.order_id),
        "traceId": str(uuid.uuid4()),
        "midId": transaction.routing.get("midId"),
        "netvalveMidId": transaction.routing.get("netvalveMidId", ""),
        "siteId": transaction.routing.get("siteId"),
        "clientId": client_id,
        "responseTimestamp": webhook_timestamp(),
        "transactionId": transaction.id,
        "responseCode": outcome.response_code,
        "responseMessage": outcome.response_message,
        "responseCodeType": outcome.response_code_type,
        "amount": transaction.amount,
        "paymentType": "CARD",
    }
    if transaction.card is not None:
        data.update(
            cardNumber=transaction.card.masked,
            cardType=cards.card_type(transaction.card.number),
            cardExpiryMonth=transaction.card.expire_month,
            cardExpiryYear=transaction.card.expire_year,
        )
    if outcome.approved:
        data.update(
            authCode=transaction.auth_code, bankTransactionId=transaction.bank_transaction_id
        )
    return data
