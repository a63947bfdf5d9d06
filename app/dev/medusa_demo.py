"""Medusa's tables and one demo cart, for `make run`'s embedded database and for the tests.

This writes to Medusa tables, which the service itself never does: it runs only against a
database that `make run` (or a test) created for the purpose.
"""

import json
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


async def seed_demo_cart(connection: asyncpg.Connection) -> None:
    """One EUR cart with an address, a line item and a pending NetValve payment session."""
    amount = raw_amount(DEMO_AMOUNT)
    async with connection.transaction():
        await connection.execute(
            """
            INSERT INTO currency (code, symbol, symbol_native, decimal_digits, rounding,
                                  raw_rounding, name)
            VALUES ('eur', '€', '€', 2, 0, '{"value": "0", "precision": 20}', 'Euro')
            ON CONFLICT DO NOTHING;
            INSERT INTO payment_provider (id) VALUES ('pp_netvalve_netvalve')
            ON CONFLICT DO NOTHING;
            """
        )
        await connection.execute(
            "INSERT INTO region (id, name, currency_code) VALUES ($1, 'Europe', 'eur') "
            "ON CONFLICT DO NOTHING",
            DEMO_REGION_ID,
        )
        await connection.execute(
            """
            INSERT INTO cart_address (id, first_name, last_name, address_1, city, country_code,
                                      postal_code, phone)
            VALUES ($1, 'Ada', 'Lovelace', '12 St James''s Square', 'London', 'gb', 'SW1Y 4JH',
                    '+442079460000')
            ON CONFLICT DO NOTHING
            """,
            DEMO_ADDRESS_ID,
        )
        await connection.execute(
            """
            INSERT INTO cart (id, region_id, email, currency_code, billing_address_id,
                              shipping_address_id)
            VALUES ($1, $2, 'ada@example.com', 'eur', $3, $3)
            ON CONFLICT DO NOTHING
            """,
            DEMO_CART_ID,
            DEMO_REGION_ID,
            DEMO_ADDRESS_ID,
        )
        await connection.execute(
            """
            INSERT INTO cart_line_item (id, cart_id, title, quantity, unit_price, raw_unit_price)
            VALUES ('cali_01JDEMOITEM000000000000000', $1, 'Analytical Engine (scale model)', 1,
                    $2, $3::jsonb)
            ON CONFLICT DO NOTHING
            """,
            DEMO_CART_ID,
            DEMO_AMOUNT,
            amount,
        )
        await connection.execute(
            """
            INSERT INTO payment_collection (id, currency_code, amount, raw_amount, status)
            VALUES ($1, 'eur', $2, $3::jsonb, 'not_paid')
            ON CONFLICT DO NOTHING
            """,
            DEMO_COLLECTION_ID,
            DEMO_AMOUNT,
            amount,
        )
        await connection.execute(
            """
            INSERT INTO cart_payment_collection (id, cart_id, payment_collection_id)
            VALUES ('capaycol_01JDEMOLINK000000000000', $1, $2)
            ON CONFLICT DO NOTHING
            """,
            DEMO_CART_ID,
            DEMO_COLLECTION_ID,
        )
        await connection.execute(
            """
            INSERT INTO payment_session (id, currency_code, amount, raw_amount, provider_id,
                                         data, status, payment_collection_id)
            VALUES ($1, 'eur', $2, $3::jsonb, $4, '{}'::jsonb, 'pending', $5)
            ON CONFLICT DO NOTHING
            """,
            DEMO_SESSION_ID,
            DEMO_AMOUNT,
            amount,
            DEMO_PROVIDER_ID,
            DEMO_COLLECTION_ID,
        )
