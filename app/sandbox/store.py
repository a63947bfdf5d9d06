"""The sandbox's state: every transaction, HPF token and clientOrderId, in memory.

All of it sits behind one `asyncio.Lock` (`lock`), so concurrent requests see each other's effects
in a single order, as they would on a real gateway. The operations that apply NetValve's rules to
this state live in `transitions`, `lookups` and `hosted`; the assumptions behind each choice are
in README.md.
"""

import asyncio
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from app.sandbox import cards
from app.sandbox.cards import Outcome
from app.sandbox.events import event_name, webhook_data
from app.sandbox.records import Card, HpfToken, SandboxRules, Transaction, initial_status

EventSink = Callable[[str, dict[str, Any]], None]

FIRST_TRANSACTION_ID = 18747
FIRST_ORDER_ID = 5001


class SandboxStore:
    def __init__(self, rules: SandboxRules, events: EventSink, client_id: str) -> None:
        self.rules = rules
        self.client_id = client_id
        self.lock = asyncio.Lock()
        self.jwt_secret = secrets.token_bytes(32)
        self._events = events
        self.reset()

    def reset(self) -> None:
        self.transactions: dict[int, Transaction] = {}
        self.tokens: dict[str, HpfToken] = {}
        self.client_order_ids: dict[str, int] = {}
        # Ids stay unique across restarts (as NetValve's are), so a ledger kept in a database
        # never meets the same transaction id twice: start from the clock in milliseconds.
        self._next_id = max(FIRST_TRANSACTION_ID, int(time.time() * 1000))
        self._next_order = FIRST_ORDER_ID

    def take_order_id(self) -> int:
        order_id = self._next_order
        self._next_order += 1
        return order_id

    def add_payment(
        self,
        kind: str,
        amount: Decimal,
        currency: str,
        outcome: Outcome,
        client_order_id: str | None,
        routing: dict[str, Any],
        card: Card,
        channel: str,
    ) -> Transaction:
        """A SALE or AUTHORIZATION: the root of a new order."""
        transaction = Transaction(
            id=self._take_id(),
            type=kind,
            amount=amount,
            currency=currency,
            outcome=outcome,
            status=initial_status(kind, outcome),
            order_id=self.take_order_id(),
            client_order_id=client_order_id,
            routing=routing,
            card=card,
            channel=channel,
        )
        if client_order_id is not None:
            self.client_order_ids[client_order_id] = transaction.id
        self.transactions[transaction.id] = transaction
        return transaction

    def add_child(
        self, parent: Transaction, kind: str, amount: Decimal, status: str
    ) -> Transaction:
        """An approved CAPTURE, CANCEL or REFUND on `parent`, with its order, card and routing."""
        transaction = Transaction(
            id=self._take_id(),
            type=kind,
            amount=amount,
            currency=parent.currency,
            outcome=cards.APPROVED,
            status=status,
            order_id=parent.order_id,
            client_order_id=parent.client_order_id,
            routing=parent.routing,
            card=parent.card,
            parent_id=parent.id,
            channel=parent.channel,
        )
        parent.children.append(transaction.id)
        self.transactions[transaction.id] = transaction
        return transaction

    def _take_id(self) -> int:
        transaction_id = self._next_id
        self._next_id += 1
        return transaction_id

    def children(self, transaction: Transaction) -> list[Transaction]:
        return [self.transactions[child] for child in transaction.children]

    def settle_pending(self, transaction: Transaction | None) -> Transaction | None:
        """A pending payment settles (approved) once `pending_seconds` have passed."""
        if (
            transaction is not None
            and transaction.outcome.pending
            and time.monotonic() - transaction.created_monotonic >= self.rules.pending_seconds
        ):
            self.finish_pending(transaction, approve=True)
        return transaction

    def finish_pending(self, transaction: Transaction, approve: bool) -> None:
        transaction.outcome = cards.APPROVED if approve else cards.DO_NOT_HONOUR
        transaction.status = initial_status(transaction.type, transaction.outcome)
        self.emit(transaction)

    def emit(self, transaction: Transaction) -> None:
        """Queue the webhook event that `transaction`, as it now stands, fires."""
        self.publish(event_name(transaction), webhook_data(transaction, self.client_id))

    def publish(self, name: str, data: dict[str, Any]) -> None:
        self._events(name, data)
