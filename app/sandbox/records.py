"""What the sandbox remembers: cards, HPF tokens, transactions, and the rules it started with."""

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.core.cards import mask
from app.sandbox.cards import Outcome


@dataclass
class SandboxRules:
    token_ttl_seconds: float
    pending_seconds: float
    partial_capture_enabled: bool
    partial_refund_enabled: bool


@dataclass
class Card:
    number: str
    expire_month: str
    expire_year: str

    @property
    def masked(self) -> str:
        return mask(self.number)


@dataclass
class HpfToken:
    token: str
    expires_at: float
    card: Card | None = None
    used: bool = False


@dataclass
class Transaction:
    id: int
    type: str  # SALE | AUTHORIZATION | CAPTURE | REFUND | CANCEL
    amount: Decimal
    currency: str
    outcome: Outcome
    status: str
    order_id: int
    client_order_id: str | None
    routing: dict[str, Any]
    card: Card | None
    parent_id: int | None = None
    channel: str = "HOSTED_PAYMENT_FIELDS"  # or API, for card fields sent directly
    refunded: Decimal = Decimal(0)
    children: list[int] = field(default_factory=list)
    chargebacks: list[Decimal] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    created_monotonic: float = field(default_factory=time.monotonic)
    trace_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    auth_code: str = field(default_factory=lambda: secrets.token_hex(3).upper())
    bank_transaction_id: str = field(default_factory=lambda: str(secrets.randbelow(10**12)))


def initial_status(kind: str, outcome: Outcome) -> str:
    if outcome.pending:
        return "Pending"
    if not outcome.approved:
        return "Declined"
    return "Authorised" if kind == "AUTHORIZATION" else "Settled"
