"""A transaction as NetValve's API shows it: an operation's response, a lookup's record, and the
sandbox's own one-line summary for its controls."""

from decimal import Decimal
from typing import Any

from app.sandbox import cards
from app.sandbox.records import Transaction
from app.sandbox.wire import timestamp


def response(transaction: Transaction, client_id: str) -> dict[str, Any]:
    outcome = transaction.outcome
    body: dict[str, Any] = {
        "traceID": transaction.trace_id,
        "responseTimestamp": timestamp(),
        "orderId": transaction.order_id,
        "transactionID": transaction.id,
        "responseCode": outcome.response_code,
        "responseMessage": outcome.response_message,
        "responseCodeType": outcome.response_code_type,
        "transactionType": transaction.type,
        "clientId": client_id,
        **{k: v for k, v in transaction.routing.items() if k in {"midId", "netvalveMidId"}},
    }
    if outcome.bank_code:
        body.update(bankResponseCode=outcome.bank_code, bankResponseMessage=outcome.bank_message)
    if transaction.card is not None:
        body.update(
            paymentMethod="CARD",
            cardNumber=transaction.card.masked,
            cardType=cards.card_type(transaction.card.number),
            cardExpiryMonth=transaction.card.expire_month,
            cardExpiryYear=transaction.card.expire_year,
            paymentChannelType=transaction.channel,
        )
    if outcome.approved:
        body.update(
            authCode=transaction.auth_code, bankTransactionId=transaction.bank_transaction_id
        )
    return body


def record(
    transaction: Transaction, children: list[Transaction], partial_refund_allowed: bool
) -> dict[str, Any]:
    card = transaction.card
    return {
        "netvalveID": transaction.id,
        "orderId": transaction.order_id,
        "clientOrderId": transaction.client_order_id,
        "transactionReference": transaction.parent_id,
        "createdDate": transaction.created_at.isoformat(),
        "status": transaction.status,
        "settlementStatus": transaction.status,
        "paymentMethod": "CARD",
        "paymentType": "CARD",
        "transactionType": transaction.type,
        "amount": transaction.amount,
        "currency": transaction.currency,
        "cardNumber": card.masked if card else None,
        "cardType": cards.card_type(card.number) if card else None,
        "responseCode": transaction.outcome.response_code,
        "responseMessage": transaction.outcome.response_message,
        "responseCodeType": transaction.outcome.response_code_type,
        "refundBalancedAmount": transaction.amount - transaction.refunded,
        "isPartialRefund": Decimal(0) < transaction.refunded < transaction.amount,
        "isPartialRefundAllowed": partial_refund_allowed,
        "chargebackData": [
            {"amount": amount, "currency": transaction.currency, "status": "OPEN"}
            for amount in transaction.chargebacks
        ],
        "transactions": [_child_entry(child, transaction.id) for child in children],
    }


def _child_entry(child: Transaction, parent_id: int) -> dict[str, Any]:
    return {
        "transactionId": child.id,
        "transactionType": child.type,
        "amount": child.amount,
        "currency": child.currency,
        "status": child.status,
        "responseCode": child.outcome.response_code,
        "responseCodeType": child.outcome.response_code_type,
        "transactionReference": parent_id,
        "createdDate": child.created_at.isoformat(),
    }


def summary(transaction: Transaction) -> dict[str, Any]:
    return {
        "transactionId": transaction.id,
        "transactionType": transaction.type,
        "clientOrderId": transaction.client_order_id,
        "status": transaction.status,
        "amount": transaction.amount,
        "responseCode": transaction.outcome.response_code,
    }
