"""NetValve's read side: `/inquiry`, `/transaction` and `/order`. A lookup is also what settles a
pending payment that has waited long enough, so each one takes `store.lock`."""

from typing import Any

from app.sandbox.records import Transaction
from app.sandbox.serialization import record, response
from app.sandbox.store import SandboxStore
from app.sandbox.wire import Answer, refusal


async def inquiry(store: SandboxStore, transaction_id: int) -> Answer:
    async with store.lock:
        transaction = store.settle_pending(store.transactions.get(transaction_id))
        if transaction is None:
            return refusal("GTW_2103", "Reference transaction not found.", 404)
        body = response(transaction, store.client_id)
        body.update(
            transactionType=transaction.type,
            status=transaction.status,
            amount=transaction.amount,
            currency=transaction.currency,
        )
        return 200, body


async def get_transaction(store: SandboxStore, transaction_id: int) -> Answer:
    async with store.lock:
        transaction = store.settle_pending(store.transactions.get(transaction_id))
        if transaction is None:
            return refusal("GTW_2103", "Reference transaction not found.", 404)
        return 200, record_of(store, transaction)


async def get_order(store: SandboxStore, query: dict[str, str]) -> Answer:
    async with store.lock:
        root = _find_order_root(store, query)
        if root is None:
            return refusal("GTW_2103", "Order not found.", 404)
        found = record_of(store, root)
        found["orderAmount"] = root.amount
        return 200, found


def record_of(store: SandboxStore, transaction: Transaction) -> dict[str, Any]:
    """`transaction` as `/transaction` shows it, with its direct children."""
    children = store.children(transaction)
    return record(transaction, children, store.rules.partial_refund_enabled)


def _find_order_root(store: SandboxStore, query: dict[str, str]) -> Transaction | None:
    """By a known clientOrderId, else transactionId, else id (the order id)."""
    if query.get("clientOrderId") in store.client_order_ids:
        found = store.transactions.get(store.client_order_ids[query["clientOrderId"]])
    elif query.get("transactionId", "").isdigit():
        found = store.transactions.get(int(query["transactionId"]))
    elif query.get("id", "").isdigit():
        order_id = int(query["id"])
        found = next((t for t in store.transactions.values() if t.order_id == order_id), None)
    else:
        found = None
    while found is not None and found.parent_id is not None:
        found = store.transactions[found.parent_id]
    return store.settle_pending(found)
