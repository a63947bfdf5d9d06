"""The payment repository's hot-path statements: what they return belongs to the session, so the
changes services make to it are written when the transaction flushes."""

import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.repositories.payment_repository import PaymentRepository

pytestmark = pytest.mark.asyncio


def session_values(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "payment_session_id": f"payses_{uuid.uuid4().hex}",
        "payment_collection_id": "paycol_1",
        "cart_id": f"cart_{uuid.uuid4().hex}",
        "currency": "EUR",
        "amount_minor": 4400,
        "medusa_amount": Decimal("44"),
        "mode": "sale",
    }
    return values | overrides


async def stored(db_session, payment_id: uuid.UUID) -> dict[str, Any]:
    row = (
        await db_session.execute(select(Payment.__table__).where(Payment.id == payment_id))
    ).one()
    return dict(row._mapping)


class TestEnsure:
    async def test_a_new_payment_is_the_sessions_and_its_changes_are_written(self, db_session):
        ledger = PaymentRepository(db_session)

        payment = await ledger.ensure(session_values())
        assert payment in db_session
        assert (payment.state, payment.attempts_count) == (PaymentState.REQUIRES_PAYMENT, 0)
        payment.card_type = "VISA"
        await ledger.settle(payment)

        assert (await stored(db_session, payment.id))["card_type"] == "VISA"

    async def test_the_same_session_gives_the_same_payment(self, db_session):
        ledger = PaymentRepository(db_session)
        values = session_values()

        first = await ledger.ensure(values)
        again = await ledger.ensure(values | {"amount_minor": 9900})

        assert again is first
        assert again.amount_minor == 4400


class TestClaim:
    async def test_the_claimed_row_is_the_sessions_payment_as_updated(self, db_session):
        ledger = PaymentRepository(db_session)
        payment = await ledger.ensure(session_values())

        claimed = await ledger.claim(payment.id, Operation.SALE, {PaymentState.REQUIRES_PAYMENT})

        assert claimed is payment
        assert (claimed.in_flight, claimed.attempts_count) == (Operation.SALE, 1)
        attempt_id = uuid.uuid4()
        claimed.in_flight_attempt_id = attempt_id
        await ledger.settle(claimed)
        row = await stored(db_session, payment.id)
        assert (row["in_flight"], row["in_flight_attempt_id"]) == ("sale", attempt_id)

    async def test_one_in_flight_operation_at_a_time(self, db_session):
        ledger = PaymentRepository(db_session)
        payment = await ledger.ensure(session_values())
        await ledger.claim(payment.id, Operation.SALE, {PaymentState.REQUIRES_PAYMENT})

        again = await ledger.claim(payment.id, Operation.SALE, {PaymentState.REQUIRES_PAYMENT})

        assert again is None
        assert (await stored(db_session, payment.id))["attempts_count"] == 1

    async def test_a_state_outside_the_allowed_ones_is_not_claimed(self, db_session):
        ledger = PaymentRepository(db_session)
        payment = await ledger.ensure(session_values())

        claimed = await ledger.claim(payment.id, Operation.CAPTURE, {PaymentState.AUTHORIZED})

        assert claimed is None

    async def test_the_extra_condition_decides_too(self, db_session):
        ledger = PaymentRepository(db_session)
        payment = await ledger.ensure(session_values())
        states = {PaymentState.REQUIRES_PAYMENT}

        refused = await ledger.claim(
            payment.id, Operation.SALE, states, extra_condition=Payment.amount_minor > 4400
        )
        claimed = await ledger.claim(
            payment.id, Operation.SALE, states, extra_condition=Payment.amount_minor >= 4400
        )

        assert refused is None
        assert claimed is payment


class TestAppliedElsewhere:
    async def test_an_attempt_not_written_yet_counts(self, db_session):
        ledger = PaymentRepository(db_session)
        payment = await ledger.ensure(session_values())
        transaction_id = int(uuid.uuid4().int % 10**12)
        ledger.add_attempt(
            PaymentAttempt(
                id=uuid.uuid4(),
                payment_id=payment.id,
                operation=Operation.SALE,
                outcome=AttemptOutcome.APPROVED,
                transaction_id=transaction_id,
            )
        )

        assert await ledger.applied_elsewhere(transaction_id, uuid.uuid4()) is True

    async def test_the_attempt_itself_does_not(self, db_session):
        ledger = PaymentRepository(db_session)
        payment = await ledger.ensure(session_values())
        transaction_id = int(uuid.uuid4().int % 10**12)
        attempt = PaymentAttempt(
            id=uuid.uuid4(),
            payment_id=payment.id,
            operation=Operation.SALE,
            outcome=AttemptOutcome.APPROVED,
            transaction_id=transaction_id,
        )
        ledger.add_attempt(attempt)

        assert await ledger.applied_elsewhere(transaction_id, attempt.id) is False
        assert await ledger.applied(transaction_id) is attempt
