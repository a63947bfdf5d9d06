"""Read-only access to Medusa 2.21's tables, with named, parameterised raw SQL.

Medusa owns these tables, so this service never maps them in the ORM and never writes to them.
The pool opens every connection with `default_transaction_read_only=on`, so each statement runs
in a read-only transaction and a write fails in PostgreSQL itself; production should also use a
role that has only SELECT (README, "Running against an existing Medusa database").

Every query filters `deleted_at IS NULL`, link tables included. Money is read from the `raw_*`
JSON (`{"value": "98.9009", "precision": 20}`) as `Decimal`, never through a float.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

from app.core.config import Settings

# The tables the queries below read; readiness fails, naming them, when one is missing.
MEDUSA_TABLES = (
    "cart",
    "cart_address",
    "cart_payment_collection",
    "payment_collection",
    "payment_session",
    "order",
    "order_cart",
)


class MedusaDataError(RuntimeError):
    """A Medusa row holds a value this service cannot read safely (e.g. a non-numeric amount)."""


@dataclass(frozen=True, slots=True)
class MedusaAddress:
    id: str
    first_name: str | None
    last_name: str | None
    company: str | None
    address_1: str | None
    address_2: str | None
    city: str | None
    province: str | None
    postal_code: str | None
    country_code: str | None
    phone: str | None


@dataclass(frozen=True, slots=True)
class MedusaCart:
    id: str
    region_id: str | None
    customer_id: str | None
    email: str | None
    currency_code: str
    completed_at: datetime | None
    created_at: datetime
    billing_address: MedusaAddress | None
    shipping_address: MedusaAddress | None


@dataclass(frozen=True, slots=True)
class MedusaPaymentSession:
    id: str
    payment_collection_id: str
    cart_id: str | None
    provider_id: str
    currency_code: str
    amount: Decimal
    status: str
    data: dict[str, Any]
    context: dict[str, Any] | None
    authorized_at: datetime | None
    created_at: datetime
    collection_status: str | None = None
    """Its payment collection's status and completion: a collection that is paid or closed
    takes no new charge, whatever this session says."""
    collection_completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MedusaPaymentCollection:
    id: str
    currency_code: str
    amount: Decimal
    authorized_amount: Decimal | None
    captured_amount: Decimal | None
    refunded_amount: Decimal | None
    status: str
    completed_at: datetime | None
    sessions: tuple[MedusaPaymentSession, ...]
    """Sessions not soft-deleted, newest first."""


@dataclass(frozen=True, slots=True)
class MedusaOrder:
    id: str
    display_id: int | None
    status: str
    is_draft_order: bool
    email: str | None
    currency_code: str
    created_at: datetime
    canceled_at: datetime | None


_ADDRESS_FIELDS = tuple(field.name for field in fields(MedusaAddress))


def _address_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{column} AS {alias}_{column}" for column in _ADDRESS_FIELDS)


# Money columns come out as the text of raw_X.value; the numeric column is only the fallback
# for rows written before raw_* existed.
def _money(column: str, alias: str) -> str:
    return f"COALESCE({alias}.raw_{column}->>'value', {alias}.{column}::text)"


CART_BY_ID = f"""
SELECT c.id, c.region_id, c.customer_id, c.email, c.currency_code, c.completed_at, c.created_at,
       {_address_columns("ba")}, {_address_columns("sa")}
FROM cart c
LEFT JOIN cart_address ba ON ba.id = c.billing_address_id AND ba.deleted_at IS NULL
LEFT JOIN cart_address sa ON sa.id = c.shipping_address_id AND sa.deleted_at IS NULL
WHERE c.id = $1 AND c.deleted_at IS NULL
"""

_SESSION_COLUMNS = f"""
       ps.id AS ps_id, ps.payment_collection_id AS ps_payment_collection_id,
       ps.provider_id AS ps_provider_id, ps.currency_code AS ps_currency_code,
       {_money("amount", "ps")} AS ps_amount, ps.status AS ps_status, ps.data AS ps_data,
       ps.context AS ps_context, ps.authorized_at AS ps_authorized_at,
       ps.created_at AS ps_created_at, pc.status AS pc_status,
       pc.completed_at AS pc_completed_at"""

# One row per active session (or one row with NULL session columns), so the collection and its
# sessions come from one statement and one snapshot.
PAYMENT_COLLECTION_BY_CART = f"""
SELECT cpc.cart_id, pc.id, pc.currency_code, {_money("amount", "pc")} AS amount,
       {_money("authorized_amount", "pc")} AS authorized_amount,
       {_money("captured_amount", "pc")} AS captured_amount,
       {_money("refunded_amount", "pc")} AS refunded_amount,
       pc.status, pc.completed_at, {_SESSION_COLUMNS}
FROM cart_payment_collection cpc
JOIN payment_collection pc ON pc.id = cpc.payment_collection_id AND pc.deleted_at IS NULL
LEFT JOIN payment_session ps ON ps.payment_collection_id = pc.id AND ps.deleted_at IS NULL
WHERE cpc.cart_id = $1 AND cpc.deleted_at IS NULL
  AND pc.id = (
      SELECT pc2.id FROM cart_payment_collection cpc2
      JOIN payment_collection pc2 ON pc2.id = cpc2.payment_collection_id
           AND pc2.deleted_at IS NULL
      WHERE cpc2.cart_id = $1 AND cpc2.deleted_at IS NULL
      ORDER BY pc2.created_at DESC, pc2.id DESC
      LIMIT 1
  )
ORDER BY ps.created_at DESC NULLS LAST, ps.id DESC
"""

PAYMENT_SESSION_BY_ID = f"""
SELECT {_SESSION_COLUMNS}, cpc.cart_id
FROM payment_session ps
JOIN payment_collection pc ON pc.id = ps.payment_collection_id AND pc.deleted_at IS NULL
LEFT JOIN cart_payment_collection cpc
       ON cpc.payment_collection_id = ps.payment_collection_id AND cpc.deleted_at IS NULL
WHERE ps.id = $1 AND ps.deleted_at IS NULL
ORDER BY cpc.created_at DESC NULLS LAST
LIMIT 1
"""

ORDER_BY_CART = """
SELECT o.id, o.display_id, o.status::text AS status, o.is_draft_order, o.email,
       o.currency_code, o.created_at, o.canceled_at
FROM order_cart oc
JOIN "order" o ON o.id = oc.order_id AND o.deleted_at IS NULL
WHERE oc.cart_id = $1 AND oc.deleted_at IS NULL
ORDER BY o.created_at DESC
LIMIT 1
"""

MISSING_TABLES = """
SELECT name FROM unnest($1::text[]) AS name
WHERE to_regclass(format('%I', name)) IS NULL
"""


def parse_amount(value: str | None, *, where: str) -> Decimal | None:
    """Medusa's raw amount text to an exact `Decimal`; refuses NaN, infinities and garbage."""
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise MedusaDataError(f"{where} is not a number") from None
    if not amount.is_finite():
        raise MedusaDataError(f"{where} is not a finite number")
    return amount


def _required_amount(value: str | None, *, where: str) -> Decimal:
    amount = parse_amount(value, where=where)
    if amount is None:
        raise MedusaDataError(f"{where} is missing")
    return amount


def _address(row: asyncpg.Record, alias: str) -> MedusaAddress | None:
    if row[f"{alias}_id"] is None:
        return None
    return MedusaAddress(**{field: row[f"{alias}_{field}"] for field in _ADDRESS_FIELDS})


def _session(row: asyncpg.Record, cart_id: str | None) -> MedusaPaymentSession:
    return MedusaPaymentSession(
        id=row["ps_id"],
        payment_collection_id=row["ps_payment_collection_id"],
        cart_id=cart_id,
        provider_id=row["ps_provider_id"],
        currency_code=row["ps_currency_code"],
        amount=_required_amount(row["ps_amount"], where=f"payment_session {row['ps_id']} amount"),
        status=row["ps_status"],
        data=row["ps_data"] or {},
        context=row["ps_context"],
        authorized_at=row["ps_authorized_at"],
        created_at=row["ps_created_at"],
        collection_status=row["pc_status"],
        collection_completed_at=row["pc_completed_at"],
    )


def _collection(rows: Sequence[asyncpg.Record]) -> MedusaPaymentCollection:
    first = rows[0]
    where = f"payment_collection {first['id']}"
    return MedusaPaymentCollection(
        id=first["id"],
        currency_code=first["currency_code"],
        amount=_required_amount(first["amount"], where=f"{where} amount"),
        authorized_amount=parse_amount(first["authorized_amount"], where=f"{where} authorized"),
        captured_amount=parse_amount(first["captured_amount"], where=f"{where} captured"),
        refunded_amount=parse_amount(first["refunded_amount"], where=f"{where} refunded"),
        status=first["status"],
        completed_at=first["completed_at"],
        sessions=tuple(_session(row, first["cart_id"]) for row in rows if row["ps_id"]),
    )


async def _init_connection(connection: asyncpg.Connection) -> None:
    # JSONB arrives as text by default; decode it so `data` and `context` are dicts.
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )


async def create_medusa_pool(settings: Settings) -> asyncpg.Pool:
    """A lazily connecting pool whose every transaction is read-only."""
    return await asyncpg.create_pool(
        settings.medusa_dsn,
        min_size=0,
        max_size=settings.medusa_pool_max_size,
        init=_init_connection,
        server_settings={
            "default_transaction_read_only": "on",
            "statement_timeout": str(settings.medusa_statement_timeout_ms),
            "application_name": "netvalve-gateway:medusa-read",
        },
    )


class MedusaRepository:
    """Named queries on Medusa's tables. Built per use from the shared read-only pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with self._pool.acquire() as connection:
            return await connection.fetch(query, *args)

    async def get_cart(self, cart_id: str) -> MedusaCart | None:
        rows = await self._fetch(CART_BY_ID, cart_id)
        if not rows:
            return None
        row = rows[0]
        return MedusaCart(
            id=row["id"],
            region_id=row["region_id"],
            customer_id=row["customer_id"],
            email=row["email"],
            currency_code=row["currency_code"],
            completed_at=row["completed_at"],
            created_at=row["created_at"],
            billing_address=_address(row, "ba"),
            shipping_address=_address(row, "sa"),
        )

    async def get_payment_collection_for_cart(self, cart_id: str) -> MedusaPaymentCollection | None:
        """The cart's newest live payment collection, with its active sessions."""
        rows = await self._fetch(PAYMENT_COLLECTION_BY_CART, cart_id)
        return _collection(rows) if rows else None

    async def get_payment_session(self, session_id: str) -> MedusaPaymentSession | None:
        rows = await self._fetch(PAYMENT_SESSION_BY_ID, session_id)
        return _session(rows[0], rows[0]["cart_id"]) if rows else None

    async def get_order_for_cart(self, cart_id: str) -> MedusaOrder | None:
        rows = await self._fetch(ORDER_BY_CART, cart_id)
        return MedusaOrder(**dict(rows[0])) if rows else None

    async def missing_tables(self) -> list[str]:
        """Which of the tables these queries read are absent; empty when Medusa is in place."""
        rows = await self._fetch(MISSING_TABLES, list(MEDUSA_TABLES))
        return [row["name"] for row in rows]
