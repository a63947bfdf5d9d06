from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
import pytest_asyncio

from app.core.config import Settings
from app.db.medusa import MedusaDataError, MedusaRepository, create_medusa_pool
from tests.fixtures.medusa import (
    create_address,
    create_cart,
    create_order,
    create_payment_collection,
    create_payment_session,
    medusa_columns,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def medusa_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_medusa_pool(settings)
    yield pool
    await pool.close()


@pytest.fixture
def medusa(medusa_pool: asyncpg.Pool) -> MedusaRepository:
    return MedusaRepository(medusa_pool)


class TestSchemaFixture:
    async def test_ddl_matches_the_columns_in_medusa_md(self, medusa_writer: asyncpg.Connection):
        rows = await medusa_writer.fetch(
            """
            SELECT table_name, column_name, is_nullable = 'YES' AS nullable,
                   CASE WHEN data_type = 'character varying' THEN 'varchar'
                        WHEN data_type = 'timestamp with time zone' THEN 'timestamptz'
                        WHEN data_type = 'USER-DEFINED' THEN 'enum'
                        ELSE data_type END AS type
            FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name = ANY($1::text[])
            ORDER BY table_name, ordinal_position
            """,
            list(medusa_columns()),
        )
        actual: dict[str, list[tuple[str, str, bool]]] = {}
        for row in rows:
            actual.setdefault(row["table_name"], []).append(
                (row["column_name"], row["type"], row["nullable"])
            )
        expected = medusa_columns()
        assert sorted(actual) == sorted(expected)
        for table, columns in expected.items():
            assert actual[table] == columns, table


class TestGetCart:
    async def test_reads_cart_and_billing_address(self, medusa, medusa_writer):
        address_id = await create_address(medusa_writer)
        cart_id = await create_cart(medusa_writer, billing_address_id=address_id)

        cart = await medusa.get_cart(cart_id)

        assert cart is not None
        assert (cart.id, cart.email, cart.currency_code) == (cart_id, "grace@example.com", "eur")
        assert cart.completed_at is None
        assert cart.billing_address is not None
        assert cart.billing_address.id == address_id
        assert (cart.billing_address.first_name, cart.billing_address.country_code) == (
            "Grace",
            "us",
        )
        assert cart.shipping_address == cart.billing_address

    async def test_soft_deleted_cart_is_not_found(self, medusa, medusa_writer):
        cart_id = await create_cart(medusa_writer, deleted=True)

        assert await medusa.get_cart(cart_id) is None

    async def test_soft_deleted_address_is_skipped(self, medusa, medusa_writer):
        address_id = await create_address(medusa_writer, deleted=True)
        cart_id = await create_cart(medusa_writer, billing_address_id=address_id)

        cart = await medusa.get_cart(cart_id)

        assert cart is not None
        assert cart.billing_address is None

    async def test_unknown_cart_is_not_found(self, medusa):
        assert await medusa.get_cart("cart_DOESNOTEXIST") is None


class TestGetPaymentCollectionForCart:
    async def test_amount_is_the_exact_raw_decimal(self, medusa, medusa_writer):
        cart_id = await create_cart(medusa_writer)
        # Medusa keeps 98.9009 in raw_amount; the numeric column may hold a rounded value.
        await create_payment_collection(
            medusa_writer, cart_id, amount="98.9009", numeric_amount="98.90"
        )

        collection = await medusa.get_payment_collection_for_cart(cart_id)

        assert collection is not None
        assert isinstance(collection.amount, Decimal)
        assert collection.amount == Decimal("98.9009")
        assert str(collection.amount) == "98.9009"
        assert collection.authorized_amount is None

    async def test_active_sessions_newest_first_without_deleted(self, medusa, medusa_writer):
        cart_id = await create_cart(medusa_writer)
        collection_id = await create_payment_collection(medusa_writer, cart_id)
        older = await create_payment_session(medusa_writer, collection_id, age=timedelta(minutes=5))
        newer = await create_payment_session(medusa_writer, collection_id, raw_value="44.0049")
        await create_payment_session(medusa_writer, collection_id, deleted=True)

        collection = await medusa.get_payment_collection_for_cart(cart_id)

        assert collection is not None
        assert [session.id for session in collection.sessions] == [newer, older]
        assert collection.sessions[0].amount == Decimal("44.0049")
        assert collection.sessions[0].cart_id == cart_id
        assert collection.sessions[0].data == {"session_id": "x"}

    async def test_collection_without_sessions(self, medusa, medusa_writer):
        cart_id = await create_cart(medusa_writer)
        collection_id = await create_payment_collection(medusa_writer, cart_id)

        collection = await medusa.get_payment_collection_for_cart(cart_id)

        assert collection is not None
        assert collection.id == collection_id
        assert collection.sessions == ()

    async def test_newest_live_collection_wins(self, medusa, medusa_writer):
        cart_id = await create_cart(medusa_writer)
        old = datetime.now(UTC) - timedelta(hours=1)
        await create_payment_collection(medusa_writer, cart_id, amount="10.00", created_at=old)
        newest = await create_payment_collection(medusa_writer, cart_id, amount="12.50")
        await create_payment_collection(medusa_writer, cart_id, amount="99.00", deleted=True)

        collection = await medusa.get_payment_collection_for_cart(cart_id)

        assert collection is not None
        assert (collection.id, collection.amount) == (newest, Decimal("12.50"))

    @pytest.mark.parametrize(
        ("deleted", "link_deleted"), [(True, False), (False, True)], ids=["row", "link"]
    )
    async def test_soft_deleted_collection_or_link_is_skipped(
        self, medusa, medusa_writer, deleted, link_deleted
    ):
        cart_id = await create_cart(medusa_writer)
        await create_payment_collection(
            medusa_writer, cart_id, deleted=deleted, link_deleted=link_deleted
        )

        assert await medusa.get_payment_collection_for_cart(cart_id) is None

    async def test_unreadable_amount_is_refused(self, medusa, medusa_writer):
        cart_id = await create_cart(medusa_writer)
        collection_id = await create_payment_collection(medusa_writer, cart_id)
        await medusa_writer.execute(
            """UPDATE payment_collection SET raw_amount = '{"value": "NaN"}' WHERE id = $1""",
            collection_id,
        )

        with pytest.raises(MedusaDataError, match="not a finite number"):
            await medusa.get_payment_collection_for_cart(cart_id)


class TestGetPaymentSession:
    async def test_reads_session_with_its_cart(self, medusa, medusa_writer):
        cart_id = await create_cart(medusa_writer)
        collection_id = await create_payment_collection(medusa_writer, cart_id)
        session_id = await create_payment_session(
            medusa_writer, collection_id, amount="19.99", currency="usd"
        )

        session = await medusa.get_payment_session(session_id)

        assert session is not None
        assert session.cart_id == cart_id
        assert session.payment_collection_id == collection_id
        assert (session.amount, session.currency_code) == (Decimal("19.99"), "usd")
        assert (session.provider_id, session.status) == ("pp_netvalve_netvalve", "pending")

    async def test_soft_deleted_session_is_not_found(self, medusa, medusa_writer):
        cart_id = await create_cart(medusa_writer)
        collection_id = await create_payment_collection(medusa_writer, cart_id)
        session_id = await create_payment_session(medusa_writer, collection_id, deleted=True)

        assert await medusa.get_payment_session(session_id) is None

    async def test_session_of_deleted_collection_is_not_found(self, medusa, medusa_writer):
        cart_id = await create_cart(medusa_writer)
        collection_id = await create_payment_collection(medusa_writer, cart_id, deleted=True)
        session_id = await create_payment_session(medusa_writer, collection_id)

        assert await medusa.get_payment_session(session_id) is None


class TestGetOrderForCart:
    async def test_reads_order_through_order_cart(self, medusa, medusa_writer):
        cart_id = await create_cart(medusa_writer)
        order_id = await create_order(medusa_writer, cart_id, status="completed")

        order = await medusa.get_order_for_cart(cart_id)

        assert order is not None
        assert (order.id, order.status, order.currency_code) == (order_id, "completed", "eur")
        assert order.display_id is not None
        assert order.is_draft_order is False

    @pytest.mark.parametrize(
        ("deleted", "link_deleted"), [(True, False), (False, True)], ids=["order", "link"]
    )
    async def test_soft_deleted_order_or_link_is_skipped(
        self, medusa, medusa_writer, deleted, link_deleted
    ):
        cart_id = await create_cart(medusa_writer)
        await create_order(medusa_writer, cart_id, deleted=deleted, link_deleted=link_deleted)

        assert await medusa.get_order_for_cart(cart_id) is None


class TestReadOnly:
    @pytest.mark.parametrize(
        "statement",
        [
            "INSERT INTO cart (id, currency_code) VALUES ('cart_WRITE', 'eur')",
            "UPDATE payment_session SET status = 'authorized'",
            "DELETE FROM payment_collection",
            "CREATE TABLE medusa_write_probe (id int)",
        ],
    )
    async def test_writes_through_the_medusa_pool_fail(self, medusa_pool, medusa_writer, statement):
        cart_id = await create_cart(medusa_writer)
        collection_id = await create_payment_collection(medusa_writer, cart_id)
        await create_payment_session(medusa_writer, collection_id)

        async with medusa_pool.acquire() as connection:
            with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
                await connection.execute(statement)

        assert await medusa_writer.fetchval("SELECT count(*) FROM payment_collection") == 1
        assert (
            await medusa_writer.fetchval(
                "SELECT count(*) FROM payment_session WHERE status = 'pending'"
            )
            == 1
        )

    async def test_missing_tables_are_named(self, medusa):
        assert await medusa.missing_tables() == []
