"""Every query on the ledger (payments and their attempts). Methods take domain arguments; the
session is the caller's.

The statements of a payment's hot path are built once, at import, with bound parameters: a call
then costs neither building the statement nor walking it for its compiled-cache key. Those that
return payments or attempts load them into the session (ORM selects, or Core DML read through
`from_statement`), because services change the objects they get and rely on the unit of work to
write the changes. Core statements autoflush through the session like ORM ones, so a read sees
what the caller has changed but not written yet.
"""

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, null, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.schemas.payment import PaymentUpdate

# How long a sweeper owns a claimed payment before another may try it.
RECONCILE_LEASE = timedelta(seconds=60)
# `PaymentAttempt.reason` of a sale NetValve did not find after the grace, and once rechecked.
NOT_FOUND = "not_found"
NOT_FOUND_RECHECKED = "not_found_rechecked"

_payments = cast(Table, Payment.__table__)
_attempts = cast(Table, PaymentAttempt.__table__)
# Refreshes a payment the session already holds: read again after a claim lost a race, the row
# must be the winner's, not the one loaded before the claim.
_GET = (
    select(Payment)
    .where(Payment.id == bindparam("payment_id"))
    .execution_options(populate_existing=True)
)
_GET_FOR_UPDATE = _GET.with_for_update()
_newest = Payment.created_at.desc()
_FIND_BY_ID = _GET.order_by(_newest).limit(1)
_FIND_BY_TRANSACTION = (
    select(Payment)
    .where(
        or_(
            Payment.transaction_id == bindparam("transaction_id"),
            Payment.settled_transaction_id == bindparam("transaction_id"),
        )
    )
    .order_by(_newest)
    .limit(1)
)
_FIND_BY_SESSION = (
    select(Payment)
    .where(Payment.payment_session_id == bindparam("payment_session_id"))
    .order_by(_newest)
    .limit(1)
)
_FIND_BY_CART = (
    select(Payment).where(Payment.cart_id == bindparam("cart_id")).order_by(_newest).limit(1)
)
_EXISTING = (
    select(Payment)
    .where(Payment.payment_session_id == bindparam("payment_session_id"))
    .execution_options(populate_existing=True)
)
# Core DML loaded as ORM rows (from_statement): the objects are the session's, as with ORM DML,
# for less of the ORM's bulk-DML machinery.
_INSERT_NEW = (
    insert(_payments)
    .on_conflict_do_nothing(index_elements=[_payments.c.payment_session_id])
    .returning(*_payments.c)
)
_ENSURE = select(Payment).from_statement(_INSERT_NEW)
_CLAIM_UPDATE = (
    update(_payments)
    .where(
        _payments.c.id == bindparam("payment_id"),
        _payments.c.in_flight.is_(None),
        _payments.c.state.in_(bindparam("states", expanding=True)),
    )
    .values(
        in_flight=bindparam("operation"),
        in_flight_attempt_id=bindparam("attempt_id"),
        attempts_count=_payments.c.attempts_count + 1,
        next_reconcile_at=null(),
        reconcile_tries=0,
    )
)
_CLAIM = (
    select(Payment)
    .from_statement(_CLAIM_UPDATE.returning(*_payments.c))
    .execution_options(populate_existing=True)
)
# Over an alias, so that it stays a query of its own inside _FOR_APPLY, which also reads
# payment_attempts (the attempt being applied), rather than being correlated to that row.
_others = _attempts.alias("other_attempts")
_APPLIED_ELSEWHERE = (
    select(_others.c.id)
    .where(
        _others.c.transaction_id == bindparam("transaction_id"),
        _others.c.outcome == AttemptOutcome.APPROVED,
        _others.c.id != bindparam("attempt_id"),
    )
    .limit(1)
)
# Everything applying an answer reads, in one statement: the payment (locked), the attempt, and
# whether another approved attempt already holds the transaction the answer names.
_FOR_APPLY = (
    select(Payment, PaymentAttempt, _APPLIED_ELSEWHERE.exists())
    .join_from(Payment, PaymentAttempt, PaymentAttempt.payment_id == Payment.id)
    .where(Payment.id == bindparam("payment_id"), PaymentAttempt.id == bindparam("attempt_id"))
    .with_for_update(of=_payments)
    .execution_options(populate_existing=True)
)
_APPLIED = select(PaymentAttempt).where(
    PaymentAttempt.transaction_id == bindparam("transaction_id"),
    PaymentAttempt.outcome == AttemptOutcome.APPROVED,
)


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "PaymentRepository":
        return cls(session)

    async def get(self, payment_id: uuid.UUID, *, for_update: bool = False) -> Payment | None:
        statement = _GET_FOR_UPDATE if for_update else _GET
        return await self.session.scalar(statement, {"payment_id": payment_id})

    async def find(
        self,
        *,
        payment_id: uuid.UUID | None = None,
        transaction_id: int | None = None,
        payment_session_id: str | None = None,
        cart_id: str | None = None,
    ) -> Payment | None:
        if payment_id is not None:
            return await self.session.scalar(_FIND_BY_ID, {"payment_id": payment_id})
        if transaction_id is not None:
            return await self.session.scalar(
                _FIND_BY_TRANSACTION, {"transaction_id": transaction_id}
            )
        if payment_session_id is not None:
            return await self.session.scalar(
                _FIND_BY_SESSION, {"payment_session_id": payment_session_id}
            )
        if cart_id is not None:
            return await self.session.scalar(_FIND_BY_CART, {"cart_id": cart_id})
        return None

    async def ensure(self, values: dict[str, Any]) -> Payment:
        """The payment of a Medusa session, created on first use (race-free upsert): one
        statement when it is new, two when it already exists."""
        created: Payment | None = await self.session.scalar(_ENSURE, {"id": uuid.uuid4(), **values})
        if created is not None:
            return created
        existing = await self.session.scalar(
            _EXISTING, {"payment_session_id": values["payment_session_id"]}
        )
        if existing is None:  # pragma: no cover - the conflicting row cannot be deleted
            raise RuntimeError("payment row vanished after upsert")
        return existing

    async def claim(
        self,
        payment_id: uuid.UUID,
        operation: Operation,
        states: Collection[PaymentState],
        *,
        attempt_id: uuid.UUID | None = None,
        extra_condition: Any = None,
    ) -> Payment | None:
        """Atomically mark `operation` in flight, by the attempt `attempt_id` (to be added in
        the same transaction); None if another one is, or the state is wrong.

        A conditional UPDATE, not read-then-write: of two racing requests exactly one wins. The
        row comes back from the same statement (RETURNING), as it is after the update.
        """
        params = {
            "payment_id": payment_id,
            "operation": operation,
            "states": list(states),
            "attempt_id": attempt_id,
        }
        statement = _CLAIM
        if extra_condition is not None:
            claim = _CLAIM_UPDATE.where(extra_condition).returning(*_payments.c)
            statement = select(Payment).from_statement(claim)
            statement = statement.execution_options(populate_existing=True)
        claimed: Payment | None = await self.session.scalar(statement, params)
        return claimed

    async def settle(self, payment: Payment) -> None:
        """Write pending changes. Server-set columns (updated_at) come back with the UPDATE
        (eager defaults), so the object stays readable after the transaction ends."""
        await self.session.flush()

    def add_attempt(self, attempt: PaymentAttempt) -> None:
        self.session.add(attempt)

    async def attempt(self, attempt_id: uuid.UUID) -> PaymentAttempt | None:
        return await self.session.get(PaymentAttempt, attempt_id)

    async def attempts(self, payment_id: uuid.UUID) -> list[PaymentAttempt]:
        result = await self.session.execute(
            select(PaymentAttempt)
            .where(PaymentAttempt.payment_id == payment_id)
            .order_by(PaymentAttempt.created_at)
        )
        return list(result.scalars())

    async def applied_elsewhere(self, transaction_id: int, attempt_id: uuid.UUID) -> bool:
        """Whether another attempt, of any payment, already holds this approved transaction."""
        found = await self.session.scalar(
            _APPLIED_ELSEWHERE, {"transaction_id": transaction_id, "attempt_id": attempt_id}
        )
        return found is not None

    async def for_apply(
        self, payment_id: uuid.UUID, attempt_id: uuid.UUID, named: int | None
    ) -> tuple[Payment, PaymentAttempt, bool] | None:
        """The payment, locked, and its attempt; and whether `named` (the transaction an
        answer names) is already another approved attempt's (see `applied_elsewhere`)."""
        result = await self.session.execute(
            _FOR_APPLY,
            {"payment_id": payment_id, "attempt_id": attempt_id, "transaction_id": named},
        )
        row = result.one_or_none()
        if row is None:
            return None
        payment, attempt, known = row
        return payment, attempt, bool(known)

    async def applied(self, transaction_id: int) -> PaymentAttempt | None:
        """The attempt that holds this approved NetValve transaction, if the ledger has it."""
        result = await self.session.execute(_APPLIED, {"transaction_id": transaction_id})
        return result.scalar_one_or_none()

    async def attempt_for_order(self, client_order_id: str) -> PaymentAttempt | None:
        """Our attempt that sent this clientOrderId (unique: one per attempt)."""
        result = await self.session.execute(
            select(PaymentAttempt).where(PaymentAttempt.client_order_id == client_order_id)
        )
        return result.scalar_one_or_none()

    async def find_for_event(
        self, client_order_id: str | None, transaction_id: int | None
    ) -> Payment | None:
        """The payment a webhook points at: by the attempt that sent its clientOrderId, else
        by any transaction id the ledger knows. Only a pointer: the proof comes later."""
        if client_order_id:
            statement = (
                select(Payment)
                .join(PaymentAttempt, PaymentAttempt.payment_id == Payment.id)
                .where(PaymentAttempt.client_order_id == client_order_id)
            )
            payment = (await self.session.execute(statement)).scalar_one_or_none()
            if payment is not None:
                return payment
        if transaction_id is None:
            return None
        payment = await self.find(transaction_id=transaction_id)
        if payment is not None:
            return payment
        result = await self.session.execute(
            select(Payment)
            .join(PaymentAttempt, PaymentAttempt.payment_id == Payment.id)
            .where(PaymentAttempt.transaction_id == transaction_id)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def not_found_to_recheck(self, before: datetime, limit: int) -> list[PaymentAttempt]:
        """Sales and authorizations given up as "not found" before `before`, not rechecked yet:
        a slow acquirer may have processed them after all."""
        result = await self.session.execute(
            select(PaymentAttempt)
            .where(
                PaymentAttempt.reason == NOT_FOUND,
                PaymentAttempt.operation.in_([Operation.SALE, Operation.AUTHORIZE]),
                PaymentAttempt.resolved_at < before,
            )
            .order_by(PaymentAttempt.resolved_at)
            .limit(limit)
        )
        return list(result.scalars())

    @staticmethod
    def apply(payment: Payment, changes: PaymentUpdate) -> None:
        for name, value in changes.model_dump(exclude_unset=True).items():
            setattr(payment, name, value)

    async def due_for_reconcile(
        self, now: datetime, min_age: timedelta, limit: int
    ) -> list[uuid.UUID]:
        """Claims payments with an unsettled operation for this sweeper (SKIP LOCKED), pushing
        their next try out so that no other sweeper takes them meanwhile."""
        due = (
            select(Payment.id)
            .where(
                Payment.in_flight.is_not(None),
                or_(Payment.next_reconcile_at.is_(None), Payment.next_reconcile_at <= now),
                Payment.updated_at <= now - min_age,
            )
            .order_by(Payment.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self.session.execute(
            update(Payment)
            .where(Payment.id.in_(due.scalar_subquery()))
            .values(
                reconcile_tries=Payment.reconcile_tries + 1,
                next_reconcile_at=now + RECONCILE_LEASE,
            )
            .returning(Payment.id)
            .execution_options(synchronize_session=False)
        )
        return list(result.scalars())

    async def release_reconcile(self, payment_ids: list[uuid.UUID], lease_until: datetime) -> int:
        """Hand back claimed payments this sweeper will not reconcile (it is stopping)."""
        if not payment_ids:
            return 0
        result = await self.session.execute(
            update(Payment)
            .where(Payment.id.in_(payment_ids), Payment.next_reconcile_at == lease_until)
            .values(next_reconcile_at=None, reconcile_tries=Payment.reconcile_tries - 1)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def unsettled_attempts(self, now: datetime) -> dict[AttemptOutcome, tuple[int, float]]:
        """Per outcome, the in-flight operations of payments (the ones still to be settled with
        NetValve): how many, and the age in seconds of the oldest."""
        result = await self.session.execute(
            select(PaymentAttempt.outcome, func.count(), func.min(PaymentAttempt.created_at))
            .join(Payment, Payment.in_flight_attempt_id == PaymentAttempt.id)
            .where(Payment.in_flight.is_not(None))
            .group_by(PaymentAttempt.outcome)
        )
        return {
            outcome: (int(count), max((now - oldest).total_seconds(), 0.0))
            for outcome, count, oldest in result
        }
