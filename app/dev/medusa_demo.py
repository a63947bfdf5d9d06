"""Medusa's tables and demo carts, for `make run`'s embedded database and for the tests.

This writes to Medusa tables, which the service itself never does: it runs only against a
database that `make run` (or a test) created for the purpose.
"""

import json
import secrets
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import asyncpg

MEDUSA_SCHEMA_SQL = (Path(__file__).parent / "medusa_schema.sql").read_text(encoding="utf-8")

DEMO_REGION_ID = "reg_01JDEMOREGION0000000000000"
DEMO_CART_ID = "cart_01JDEMOCART00000000000000"
DEMO_ADDRESS_ID = "caaddr_01JDEMOADDRESS00000000000"
DEMO_COLLECTION_ID = "pay_col_01JDEMOCOLLECTION000000000"
DEMO_SESSION_ID = "payses_01JDEMOSESSION00000000000"
DEMO_PROVIDER_ID = "pp_netvalve_netvalve"
DEMO_AMOUNT = Decimal("44.00")


def raw_amount(value: Decimal | str) -> str:
    """Medusa's BigNumber JSON for an amount, e.g. {"value": "98.9009", "precision": 20}."""
    return json.dumps({"value": str(value), "precision": 20})


async def create_medusa_schema(connection: asyncpg.Connection) -> None:
    await connection.execute(MEDUSA_SCHEMA_SQL)


@dataclass(frozen=True)
class DemoCart:
    cart_id: str
    session_id: str
    amount: Decimal
    currency: str
    region_id: str = DEMO_REGION_ID
    address_id: str = DEMO_ADDRESS_ID
    collection_id: str = DEMO_COLLECTION_ID
    item_id: str = "cali_01JDEMOITEM000000000000000"
    link_id: str = "capaycol_01JDEMOLINK000000000000"

    @classmethod
    def fresh(cls, amount: Decimal, currency: str) -> "DemoCart":
        """A cart with new ids, in a region of its own currency."""
        suffix = secrets.token_hex(10).upper()
        currency = currency.lower()
        return cls(
            cart_id=f"cart_01JDEMO{suffix}",
            session_id=f"payses_01JDEMO{suffix}",
            amount=amount,
            currency=currency,
            region_id=f"reg_01JDEMOREGION{currency.upper()}",
            address_id=f"caaddr_01JDEMO{suffix}",
            collection_id=f"pay_col_01JDEMO{suffix}",
            item_id=f"cali_01JDEMO{suffix}",
            link_id=f"capaycol_01JDEMO{suffix}",
        )


DEMO_CART = DemoCart(DEMO_CART_ID, DEMO_SESSION_ID, DEMO_AMOUNT, "eur")
CURRENCY_NAMES = {"eur": ("€", "Euro"), "usd": ("$", "US Dollar"), "php": ("₱", "Philippine Peso")}


async def seed_demo_cart(connection: asyncpg.Connection, cart: DemoCart = DEMO_CART) -> None:
    """One cart with an address, a line item and a pending NetValve payment session."""
    amount = raw_amount(cart.amount)
    symbol, name = CURRENCY_NAMES.get(cart.currency, (cart.currency.upper(), cart.currency))
    async with connection.transaction():
        await connection.execute(
            """
            INSERT INTO currency (code, symbol, symbol_native, decimal_digits, rounding,
                                  raw_rounding, name)
            VALUES ($1, $2, $2, 2, 0, '{"value": "0", "precision": 20}', $3)
            ON CONFLICT DO NOTHING
            """,
            cart.currency,
            symbol,
            name,
        )
        await connection.execute(
            "INSERT INTO payment_provider (id) VALUES ($1) ON CONFLICT DO NOTHING",
            DEMO_PROVIDER_ID,
        )
        await connection.execute(
            "INSERT INTO region (id, name, currency_code) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            cart.region_id,
            "Europe" if cart.currency == "eur" else f"Demo {cart.currency.upper()}",
            cart.currency,
        )
        await connection.execute(
            """
            INSERT INTO cart_address (id, first_name, last_name, address_1, city, country_code,
                                      postal_code, phone)
            VALUES ($1, 'Ada', 'Lovelace', '12 St James''s Square', 'London', 'gb', 'SW1Y 4JH',
                    '+442079460000')
            ON CONFLICT DO NOTHING
            """,
            cart.address_id,
        )
        await connection.execute(
            """
            INSERT INTO cart (id, region_id, email, currency_code, billing_address_id,
                              shipping_address_id)
            VALUES ($1, $2, 'ada@example.com', $3, $4, $4)
            ON CONFLICT DO NOTHING
            """,
            cart.cart_id,
            cart.region_id,
            cart.currency,
            cart.address_id,
        )
        await connection.execute(
            """
            INSERT INTO cart_line_item (id, cart_id, title, quantity, unit_price, raw_unit_price)
            VALUES ($1, $2, 'Analytical Engine (scale model)', 1, $3, $4::jsonb)
            ON CONFLICT DO NOTHING
            """,
            cart.item_id,
            cart.cart_id,
            cart.amount,
            amount,
        )
        await connection.execute(
            """
            INSERT INTO payment_collection (id, currency_code, amount, raw_amount, status)
            VALUES ($1, $2, $3, $4::jsonb, 'not_paid')
            ON CONFLICT DO NOTHING
            """,
            cart.collection_id,
            cart.currency,
            cart.amount,
            amount,
        )
        await connection.execute(
            """
            INSERT INTO cart_payment_collection (id, cart_id, payment_collection_id)
            VALUES ($1, $2, $3)
            ON CONFLICT DO NOTHING
            """,
            cart.link_id,
            cart.cart_id,
            cart.collection_id,
        )
        await connection.execute(
            """
            INSERT INTO payment_session (id, currency_code, amount, raw_amount, provider_id,
                                         data, status, payment_collection_id)
            VALUES ($1, $2, $3, $4::jsonb, $5, '{}'::jsonb, 'pending', $6)
            ON CONFLICT DO NOTHING
            """,
            cart.session_id,
            cart.currency,
            cart.amount,
            amount,
            DEMO_PROVIDER_ID,
            cart.collection_id,
        )
