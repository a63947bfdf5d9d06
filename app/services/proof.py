"""What NetValve's own record of a transaction proves, checked field by field.

A gateway answer or a webhook is only believed for the attempt it names: the record must be of
the expected type, for our clientOrderId, in the payment's currency and for the amount asked.
Everything here is pure: the callers fetch the records and own the ledger.
"""

from decimal import Decimal

from app.clients.netvalve import Approved, Declined, Pending, TransactionRecord
from app.core.money import exponent, quantize
from app.models.payment import Operation
from app.models.payment_attempt import PaymentAttempt

# NetValve's transactionType for each operation of ours.
RECORD_KINDS: dict[Operation, str] = {
    Operation.SALE: "SALE",
    Operation.AUTHORIZE: "AUTHORIZATION",
    Operation.CAPTURE: "CAPTURE",
    Operation.REFUND: "REFUND",
    Operation.CANCEL: "CANCEL",
}
ROOT_OPERATIONS = frozenset({Operation.SALE, Operation.AUTHORIZE})


def minor_of(amount: Decimal, currency: str) -> int | None:
    """`amount` in minor units; None if it has more decimals than the currency allows."""
    if amount != quantize(amount, currency):
        return None
    return int(amount.scaleb(exponent(currency)))


def root_mismatch(record: TransactionRecord, attempt: PaymentAttempt, currency: str) -> str | None:
    """Why `record` is not the sale or authorization `attempt` sent; None if it is."""
    kind = RECORD_KINDS[attempt.operation]
    if record.kind != kind:
        return f"NetValve's record of {record.transaction_id} is a {record.kind}, not a {kind}"
    if attempt.transaction_id is not None and record.transaction_id != attempt.transaction_id:
        return f"NetValve's record is {record.transaction_id}, not {attempt.transaction_id}"
    # A record found by the id NetValve's own answer to this attempt gave may omit the
    # clientOrderId; one found any other way must carry ours.
    known_by_id = attempt.transaction_id is not None and record.client_order_id is None
    if record.client_order_id != attempt.client_order_id and not known_by_id:
        return (
            f"NetValve's record of {record.transaction_id} is for clientOrderId "
            f"{record.client_order_id!r}, not {attempt.client_order_id!r}"
        )
    if record.currency != currency:
        return f"NetValve's record is in {record.currency}, the payment in {currency}"
    amount = minor_of(record.amount, currency) if record.amount is not None else None
    if amount is None or amount != attempt.amount_minor:
        return f"NetValve's record is for {record.amount} {currency}, not the amount sent"
    return None


def record_answer(operation: Operation, record: TransactionRecord) -> Approved | Pending | Declined:
    """A root record, read as the answer its sale or authorization would have had."""
    body = {
        "transactionID": record.transaction_id,
        "cardNumber": record.card_number,
        "cardType": record.card_type,
    }
    kind: type[Approved | Pending | Declined] = (
        Approved if record.approved else Pending if record.outcome == "pending" else Declined
    )
    return kind(
        operation=operation.value,
        http_status=200,
        body=body,
        response_code=record.response_code,
        response_message=record.response_message,
        response_code_type=record.response_code_type
        or ("APPROVED" if record.approved else "PENDING" if kind is Pending else "SOFT DECLINE"),
    )
