"""CPU per sale spent in the repositories: a sale's ledger calls, N times, on a real PostgreSQL.

    python -m app.dev.ledger_cpu [--sales 2000] [--warmup 200]

Runs the repository calls of one approved sale in the order and transactions the payment
service makes them (the idempotency claim; the ledger check; the claim with its attempt and the
spent token; the answer applied; the stored answer), one sale after another, and reports this
process's CPU time per sale (`time.process_time`): the server's own CPU is not in it, so the
figure is the service's cost of talking to the database. Uses the server at TEST_DATABASE_URL
when set (it creates and drops a scratch database there), else an embedded one.
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from alembic import command
from app.dev.embedded_pg import EmbeddedPostgres, drop_database, ensure_database, with_database
from app.models.payment import Operation, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.repositories.hpf_session_repository import HpfSessionRepository
from app.repositories.idempotency_key_repository import IdempotencyRepository
from app.repositories.payment_repository import PaymentRepository
from app.schemas.payment import PaymentUpdate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TTL = timedelta(hours=24)


async def sale(sessionmaker: async_sessionmaker[AsyncSession], number: int) -> None:
    scope, key, now = "bench", f"key-{uuid.uuid4().hex}", datetime.now(UTC)
    async with sessionmaker.begin() as session:
        if not await IdempotencyRepository(session).claim(scope, key, "f" * 64, now, TTL):
            raise RuntimeError("fresh key not claimed")
    payment_session_id = f"payses_{uuid.uuid4().hex}"
    async with sessionmaker.begin() as session:
        if await PaymentRepository(session).find(payment_session_id=payment_session_id):
            raise RuntimeError("fresh session already paid")
    async with sessionmaker.begin() as session:
        ledger = PaymentRepository(session)
        payment = await ledger.ensure(
            {
                "payment_session_id": payment_session_id,
                "payment_collection_id": "paycol_1",
                "cart_id": f"cart_{number}",
                "currency": "EUR",
                "amount_minor": 4400,
                "medusa_amount": Decimal("44"),
                "mode": "sale",
            }
        )
        claimed = await ledger.claim(payment.id, Operation.SALE, {PaymentState.REQUIRES_PAYMENT})
        if claimed is None:
            raise RuntimeError("fresh payment not claimed")
        attempt = PaymentAttempt(
            id=uuid.uuid4(),
            payment_id=payment.id,
            operation=Operation.SALE,
            client_order_id=f"{payment.id.hex}-{claimed.attempts_count}",
            amount_minor=4400,
            request_key=key,
        )
        ledger.add_attempt(attempt)
        claimed.in_flight_attempt_id = attempt.id
        await HpfSessionRepository(session).spend(f"token-{number}", now)
    await apply_approval(sessionmaker, payment.id, attempt.id, 10_000_000 + number)
    async with sessionmaker.begin() as session:
        await IdempotencyRepository(session).complete(scope, key, 200, {"id": str(payment.id)})


async def apply_approval(
    sessionmaker: async_sessionmaker[AsyncSession],
    payment_id: uuid.UUID,
    attempt_id: uuid.UUID,
    transaction_id: int,
) -> None:
    async with sessionmaker.begin() as session:
        ledger = PaymentRepository(session)
        payment = await ledger.get(payment_id, for_update=True)
        attempt = await ledger.attempt(attempt_id)
        if payment is None or attempt is None or payment.in_flight_attempt_id != attempt.id:
            raise RuntimeError("claimed sale not found")
        if await ledger.applied_elsewhere(transaction_id, attempt.id):
            raise RuntimeError("fresh transaction already applied")
        attempt.http_status, attempt.elapsed_ms = 200, 50.0
        attempt.outcome, attempt.transaction_id = AttemptOutcome.APPROVED, transaction_id
        attempt.response_code, attempt.response_message = "GTW_0000", "Approved"
        ledger.apply(
            payment,
            PaymentUpdate(
                state=PaymentState.CAPTURED,
                transaction_id=transaction_id,
                settled_transaction_id=transaction_id,
                authorized_minor=attempt.amount_minor,
                captured_minor=attempt.amount_minor,
                response_code="GTW_0000",
                response_message="Approved",
                card_number="411111******1111",
                card_type="VISA",
                decline_type=None,
            ),
        )
        payment.in_flight = None
        payment.in_flight_attempt_id = None
        attempt.resolved_at = datetime.now(UTC)
        await ledger.settle(payment)
    if payment.state is not PaymentState.CAPTURED or payment.updated_at is None:
        raise RuntimeError("approval not applied")


async def verify(sessionmaker: async_sessionmaker[AsyncSession], sales: int) -> None:
    """The timed path did a sale's whole job: every payment captured, every attempt approved,
    every key answered."""
    async with sessionmaker() as session:
        counts = (
            await session.execute(
                text(
                    "SELECT (SELECT count(*) FROM payments WHERE state = 'captured'"
                    " AND in_flight IS NULL),"
                    " (SELECT count(*) FROM payment_attempts WHERE outcome = 'approved'"
                    " AND resolved_at IS NOT NULL),"
                    " (SELECT count(*) FROM idempotency_keys WHERE response_status = 200"
                    " AND locked_at IS NULL)"
                )
            )
        ).one()
    if tuple(counts) != (sales, sales, sales):
        raise RuntimeError(f"expected {sales} finished sales, found {tuple(counts)}")


async def measure(url: str, sales: int, warmup: int, rounds: int) -> list[float]:
    engine = create_async_engine(url, pool_size=5, pool_pre_ping=True)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    try:
        for number in range(warmup):
            await sale(sessionmaker, -number - 1)
        per_sale = []
        for round_ in range(rounds):
            started = time.process_time()
            for number in range(sales):
                await sale(sessionmaker, round_ * sales + number)
            per_sale.append((time.process_time() - started) / sales * 1000)
        await verify(sessionmaker, warmup + rounds * sales)
        return per_sale
    finally:
        await engine.dispose()


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    external = os.environ.get("TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="ledger-cpu-") as directory:
        server = None
        if external:
            admin = external.replace("postgresql://", "postgresql+asyncpg://", 1)
        else:
            server = EmbeddedPostgres(Path(directory) / "data", cleanup="delete")
            admin = server.url()
        name = f"ledger_cpu_{uuid.uuid4().hex[:8]}"
        await ensure_database(admin, name)
        try:
            yield with_database(admin, name)
        finally:
            await drop_database(admin, name)
            if server is not None:
                server.stop()


def migrate(url: str) -> None:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    command.upgrade(config, "head")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    async with scratch_database() as url:
        await asyncio.to_thread(migrate, url)
        per_sale = await measure(url, args.sales, args.warmup, args.rounds)
    rounds = ", ".join(f"{value:.3f}" for value in per_sale)
    print(  # noqa: T201 - a command-line report
        f"CPU per sale: median {statistics.median(per_sale):.3f} ms "
        f"(rounds of {args.sales}: {rounds})"
    )


if __name__ == "__main__":
    asyncio.run(main())
