"""NetValve's own record of a transaction (GET /transaction, GET /order), read into
`TransactionRecord`: the proof webhooks and unknown outcomes are settled against."""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from app.clients.netvalve.values import as_decimal, as_int, text_or_none

PENDING_CODE = "GTW_1002"

RecordOutcome = Literal["approved", "pending", "declined"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionRecord:
    """NetValve's own record of one transaction: GET /transaction, an order's root from GET
    /order, or one of the `transactions[]` it lists. The proof a webhook is checked against.

    `kind` is NetValve's transactionType (SALE, AUTHORIZATION, CAPTURE, REFUND, CANCEL, ...);
    `parent_id` its transactionReference; `chargebacks` the amounts in its chargebackData.
    """

    transaction_id: int
    kind: str
    outcome: RecordOutcome
    amount: Decimal | None
    currency: str | None
    client_order_id: str | None
    parent_id: int | None
    response_code: str | None = None
    response_message: str | None = None
    response_code_type: str | None = None
    status: str | None = None
    created: str | None = None
    card_number: str | None = None
    card_type: str | None = None
    chargebacks: tuple[Decimal, ...] = ()
    children: tuple["TransactionRecord", ...] = ()

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"


def parse_record(
    body: Mapping[str, Any], parent: TransactionRecord | None = None
) -> TransactionRecord | None:
    """The record in `body` with its children; None if it names no transaction, type or outcome."""
    transaction_id = as_int(
        body.get("netvalveID", body.get("transactionId", body.get("transactionID")))
    )
    kind, outcome = body.get("transactionType"), _outcome(body)
    if transaction_id is None or not isinstance(kind, str) or outcome is None:
        return None
    currency = body.get("currency")
    client_order_id = body.get("clientOrderId")
    record = TransactionRecord(
        transaction_id=transaction_id,
        kind=kind.upper(),
        outcome=outcome,
        amount=as_decimal(body.get("amount")),
        currency=str(currency).upper() if currency else (parent.currency if parent else None),
        client_order_id=(
            str(client_order_id)
            if client_order_id not in (None, "")
            else (parent.client_order_id if parent else None)
        ),
        parent_id=as_int(body.get("transactionReference"))
        or (parent.transaction_id if parent else None),
        response_code=text_or_none(body.get("responseCode")),
        response_message=text_or_none(body.get("responseMessage")),
        response_code_type=text_or_none(body.get("responseCodeType")),
        status=text_or_none(body.get("status")),
        created=text_or_none(body.get("createdDate")),
        card_number=text_or_none(body.get("cardNumber")),
        card_type=text_or_none(body.get("cardType")),
        chargebacks=_chargebacks(body.get("chargebackData")),
    )
    children = body.get("transactions") if parent is None else None
    if not isinstance(children, list):
        return record
    read = (parse_record(child, record) for child in children if isinstance(child, Mapping))
    return dataclasses.replace(record, children=tuple(child for child in read if child))


def _chargebacks(items: object) -> tuple[Decimal, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(
        amount
        for item in items
        if isinstance(item, Mapping) and (amount := as_decimal(item.get("amount"))) is not None
    )


def _outcome(body: Mapping[str, Any]) -> RecordOutcome | None:
    code_type = str(body.get("responseCodeType") or "").upper()
    if code_type:
        return (
            "approved"
            if code_type == "APPROVED"
            else "pending"
            if code_type == "PENDING"
            else "declined"
        )
    code = str(body.get("responseCode") or "")
    if not code:
        return None
    if code == PENDING_CODE:
        return "pending"
    return "approved" if in_code_range(code, 1000, 1999) else "declined"


def in_code_range(code: str, low: int, high: int) -> bool:
    """`GTW_1000` is in 1000..1999: NetValve's code families are number ranges."""
    _, _, number = code.partition("_")
    return number.isdigit() and low <= int(number) <= high
