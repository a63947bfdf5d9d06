"""What the timed phases need, made before the clock starts: Medusa rows, HPF payment tokens and
webhook bodies. Identifiers come from a seeded generator, so two runs send the same shapes."""

import asyncio
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from app.clients.netvalve import Approved, NetvalveClient
from app.core.money import json_with_amounts
from app.dev.medusa_demo import raw_amount

APPROVE_CARD = "4012000098765439"  # a documented sandbox test card that approves
AMOUNT = Decimal("44.00")  # not one of the sandbox's trigger amounts
CURRENCY = "eur"
PROVIDER_ID = "pp_netvalve_netvalve"


@dataclass(frozen=True, slots=True)
class Checkout:
    """A Medusa payment session ready to be paid, and the HPF token the storefront got for it."""

    payment_session_id: str
    payment_token: str


class Ids:
    """Medusa-style ids (`cart_01...`) from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)  # noqa: S311 (benchmark data, not security)

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self._random.getrandbits(128), version=4)

    def medusa(self, prefix: str) -> str:
        return f"{prefix}_{self.uuid().hex[:26].upper()}"


async def create_payment_sessions(
    connection: asyncpg.Connection, ids: Ids, count: int
) -> list[str]:
    """`count` EUR carts, each with a billing address, a payment collection and one pending
    NetValve payment session, written as Medusa 2.21 writes them (see tests/fixtures/medusa.py)."""
    addresses, carts, collections, links, sessions = [], [], [], [], []
    amount_json = raw_amount(AMOUNT)
    for _ in range(count):
        address, cart = ids.medusa("caaddr"), ids.medusa("cart")
        collection, session = ids.medusa("pay_col"), ids.medusa("payses")
        addresses.append((address,))
        carts.append((cart, address))
        collections.append((collection, AMOUNT, amount_json))
        links.append((ids.medusa("capaycol"), cart, collection))
        sessions.append((session, AMOUNT, amount_json, collection))
    async with connection.transaction():
        await connection.executemany(
            """
            INSERT INTO cart_address (id, first_name, last_name, address_1, city, country_code,
                                      postal_code, phone)
            VALUES ($1, 'Ada', 'Lovelace', '12 St James''s Square', 'London', 'gb', 'SW1Y 4JH',
                    '+442079460000')
            """,
            addresses,
        )
        await connection.executemany(
            """
            INSERT INTO cart (id, email, currency_code, billing_address_id, shipping_address_id)
            VALUES ($1, 'ada@example.com', 'eur', $2, $2)
            """,
            carts,
        )
        await connection.executemany(
            """
            INSERT INTO payment_collection (id, currency_code, amount, raw_amount, status)
            VALUES ($1, 'eur', $2, $3::jsonb, 'not_paid')
            """,
            collections,
        )
        await connection.executemany(
            """
            INSERT INTO cart_payment_collection (id, cart_id, payment_collection_id)
            VALUES ($1, $2, $3)
            """,
            links,
        )
        await connection.executemany(
            f"""
            INSERT INTO payment_session (id, currency_code, amount, raw_amount, provider_id, data,
                                         status, payment_collection_id)
            VALUES ($1, 'eur', $2, $3::jsonb, '{PROVIDER_ID}', '{{}}'::jsonb, 'pending', $4)
            """,  # noqa: S608 (a module constant)
            sessions,
        )
    return [row[0] for row in sessions]


async def payment_tokens(
    client: NetvalveClient, hpf: httpx.AsyncClient, count: int, concurrency: int = 32
) -> list[str]:
    """`count` HPF tokens bound to an approving card: what the storefront's hosted fields do
    (`/hpf/initializeSession` through the service's client, then the SDK's `/hpf/tokenize`)."""
    limit = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with limit:
            session = await client.initialize_hpf_session()
            if not isinstance(session, Approved):
                raise RuntimeError(f"hpf/initializeSession failed: {session}")
            token = str(session.body["paymentToken"])
            tokenized = await hpf.post(
                "/hpf/tokenize",
                json={
                    "paymentToken": token,
                    "cardNumber": APPROVE_CARD,
                    "cardExpireMonth": "12",
                    "cardExpireYear": "2030",
                    "cardSecurityCode": "999",
                    "cardHolderName": "Ada Lovelace",
                },
            )
            if tokenized.status_code != 200:
                raise RuntimeError(f"hpf/tokenize answered {tokenized.status_code}")
            return token

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def checkouts(
    connection: asyncpg.Connection,
    client: NetvalveClient,
    hpf: httpx.AsyncClient,
    ids: Ids,
    count: int,
) -> list[Checkout]:
    sessions = await create_payment_sessions(connection, ids, count)
    tokens = await payment_tokens(client, hpf, count)
    return [Checkout(session, token) for session, token in zip(sessions, tokens, strict=True)]


# (eventName, transactionType, share of the events): mostly purchases, as a sale-mode shop
# sees them, plus refunds done in NetValve's portal and chargebacks.
_EVENT_MIX = (
    ("PURCHASED", "SALE", 0.8),
    ("REFUNDED", "REFUND", 0.1),
    ("CHARGEBACK", "SALE", 0.1),
)


@dataclass(frozen=True, slots=True)
class Sale:
    """An approved sale: NetValve's answer to /sale and the clientOrderId it was sent with."""

    answer: Mapping[str, Any]
    client_order_id: str


def webhook_bodies(sales: Sequence[Sale], count: int, client_id: str, seed: int) -> list[bytes]:
    """`count` distinct webhook bodies about the given sales, in
    the shape the sandbox and NetValve send (NETVALVE_API.md §10): `{eventName, data}`, amounts
    as two-decimal numbers, a zone-less timestamp with nanoseconds. Each has its own traceId, so
    each is a new event for the service's dedup key."""
    if not sales:
        raise ValueError("webhook bodies need at least one sale to describe")
    rng = random.Random(seed)  # noqa: S311 (benchmark data, not security)
    names = [name for name, _, _ in _EVENT_MIX]
    weights = [share for _, _, share in _EVENT_MIX]
    kinds = {name: kind for name, kind, _ in _EVENT_MIX}
    start = datetime(2025, 3, 14, 9, 26, 53)
    bodies = []
    for index in range(count):
        sale, client_order_id = (
            sales[index % len(sales)].answer,
            sales[index % len(sales)].client_order_id,
        )
        name = rng.choices(names, weights)[0]
        stamp = start + timedelta(microseconds=index * 1_337)
        transaction_id = int(sale["transactionID"])
        data: dict[str, Any] = {
            "transactionType": kinds[name],
            "clientOrderId": client_order_id,
            "orderId": str(sale["orderId"]),
            "traceId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "midId": sale.get("midId"),
            "netvalveMidId": sale.get("netvalveMidId", ""),
            "siteId": None,
            "clientId": client_id,
            "responseTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{stamp.microsecond:06d}000",
            "transactionId": transaction_id + 1 if name == "REFUNDED" else transaction_id,
            "responseCode": "GTW_1000",
            "responseMessage": "Transaction Approved/ Request Successful.",
            "responseCodeType": "APPROVED",
            "amount": AMOUNT,
            "paymentType": "CARD",
            "cardNumber": sale.get("cardNumber"),
            "cardType": sale.get("cardType"),
            "cardExpiryMonth": sale.get("cardExpiryMonth", "12"),
            "cardExpiryYear": sale.get("cardExpiryYear", "2030"),
            "authCode": sale.get("authCode"),
            "bankTransactionId": sale.get("bankTransactionId"),
        }
        if name == "CHARGEBACK":
            data.update(chargebackTransactionType="Chargeback", chargebackSource="CB-Alert")
        bodies.append(json_with_amounts({"eventName": name, "data": data}))
    return bodies
