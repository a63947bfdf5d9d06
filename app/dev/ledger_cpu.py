"""CPU per sale spent in the repositories: a sale's ledger calls, N times, on a real PostgreSQL.

    python -m app.dev.ledger_cpu [--sales 500] [--rounds 6] [--against OTHER_CHECKOUT]

Runs the repository calls of one approved sale in the order and transactions the payment
service makes them (the idempotency claim; the ledger check; the claim with its attempt and the
spent token; the answer applied; the stored answer), one sale after another, and reports this
process's CPU time per sale (`time.process_time`): the server's own CPU is not in it, so the
figure is the service's cost of talking to the database. Uses the server at TEST_DATABASE_URL
when set (it creates and drops a scratch database there), else an embedded one.

With `--against`, the repositories of another checkout (same models, same method signatures) run
in the same process, their rounds alternating with this checkout's: on a shared machine whose
load moves from minute to minute, only a comparison made side by side means anything.
"""

import argparse
import asyncio
import importlib.util
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from alembic import command
from app.dev.embedded_pg import EmbeddedPostgres, drop_database, ensure_database, with_database
from app.models.payment import Operation, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.repositories import (
    hpf_session_repository,
    idempotency_key_repository,
    payment_repository,
)
from app.schemas.payment import PaymentUpdate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TTL = timedelta(hours=24)
REPOSITORY_MODULES = ("payment_repository", "idempotency_key_repository", "hpf_session_repository")


@dataclass(frozen=True)
class Repositories:
    """One implementation of the three repositories a sale uses."""

    payments: Any
    keys: Any
    hpf_sessions: Any

    @classmethod
    def of(cls, modules: dict[str, ModuleType]) -> "Repositories":
        return cls(
            modules["payment_repository"].PaymentRepository,
            modules["idempotency_key_repository"].IdempotencyRepository,
            modules["hpf_session_repository"].HpfSessionRepository,
        )


OURS = Repositories.of(
    {
        "payment_repository": payment_repository,
        "idempotency_key_repository": idempotency_key_repository,
        "hpf_session_repository": hpf_session_repository,
    }
)


def load_repositories(checkout: Path) -> Repositories:
    """The repositories of another checkout, imported under private names; they use this
    checkout's models."""
    modules = {}
    for name in REPOSITORY_MODULES:
        path = checkout / "app" / "repositories" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"_against_{name}", path)
        if spec is None or spec.loader is None:
            raise FileNotFoundError(path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[name] = module
    return Repositories.of(modules)


async def sale(
    sessionmaker: async_sessionmaker[AsyncSession], repositories: Repositories, number: int
) -> None:
    scope, key, now = "bench", f"key-{uuid.uuid4().hex}", datetime.now(UTC)
    async with sessionmaker.begin() as session:
        if not await repositories.keys(session).claim(scope, key, "f" * 64, now, TTL):
            raise RuntimeError("fresh key not claimed")
    payment_session_id = f"payses_{uuid.uuid4().hex}"
    async with sessionmaker.begin() as session:
        if await repositories.payments(session).find(payment_session_id=payment_session_id):
            raise RuntimeError("fresh session already paid")
    async with sessionmaker.begin() as session:
        ledger = repositories.payments(session)
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
        await repositories.hpf_sessions(session).spend(f"token-{number}", now)
    await apply_approval(sessionmaker, repositories, payment.id, attempt.id, 10_000_000 + number)
    async with sessionmaker.begin() as session:
        await repositories.keys(session).complete(scope, key, 200, {"id": str(payment.id)})


async def apply_approval(
    sessionmaker: async_sessionmaker[AsyncSession],
    repositories: Repositories,
    payment_id: uuid.UUID,
    attempt_id: uuid.UUID,
    transaction_id: int,
) -> None:
    async with sessionmaker.begin() as session:
        ledger = repositories.payments(session)
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


async def measure(
    url: str, contenders: dict[str, Repositories], sales: int, rounds: int
) -> dict[str, list[float]]:
    """CPU ms per sale of each contender, one figure per round; the contenders take turns
    within each round, in an order that alternates from round to round."""
    engine = create_async_engine(url, pool_size=5, pool_pre_ping=True)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    per_sale: dict[str, list[float]] = {name: [] for name in contenders}
    done = 0
    try:
        for repositories in contenders.values():  # warm-up: caches, prepared statements
            for _ in range(sales // 4):
                await sale(sessionmaker, repositories, done := done + 1)
        for round_ in range(rounds):
            names = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
            for name in names:
                started = time.process_time()
                for _ in range(sales):
                    await sale(sessionmaker, contenders[name], done := done + 1)
                per_sale[name].append((time.process_time() - started) / sales * 1000)
        await verify(sessionmaker, done)
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
    parser.add_argument("--sales", type=int, default=500, help="sales per contender and round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    contenders = {"this checkout": OURS}
    if args.against is not None:
        contenders[str(args.against)] = load_repositories(args.against)
    async with scratch_database() as url:
        await asyncio.to_thread(migrate, url)
        per_sale = await measure(url, contenders, args.sales, args.rounds)
    for name, figures in per_sale.items():
        rounds = ", ".join(f"{value:.2f}" for value in figures)
        print(  # noqa: T201 - a command-line report
            f"{name}: CPU per sale, median {statistics.median(figures):.2f} ms (rounds: {rounds})"
        )
    if len(per_sale) == 2:
        ours, theirs = per_sale.values()
        ratios = [mine / other for mine, other in zip(ours, theirs, strict=True)]
        print(  # noqa: T201 - a command-line report
            f"this checkout / other, per round: median {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
        )


if __name__ == "__main__":
    asyncio.run(main())
