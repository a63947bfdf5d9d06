"""Every query on extra_charges."""

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.extra_charge import ExtraCharge, ExtraChargeStatus


class ExtraChargeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ExtraChargeRepository":
        return cls(session)

    def add(self, charge: ExtraCharge) -> None:
        self.session.add(charge)

    async def get(self, charge_id: uuid.UUID) -> ExtraCharge | None:
        return await self.session.get(ExtraCharge, charge_id, populate_existing=True)

    async def for_transaction(self, transaction_id: int) -> ExtraCharge | None:
        result = await self.session.execute(
            select(ExtraCharge).where(ExtraCharge.transaction_id == transaction_id)
        )
        return result.scalar_one_or_none()

    async def search(
        self,
        *,
        status: ExtraChargeStatus | None,
        payment_id: uuid.UUID | None,
        limit: int,
    ) -> list[ExtraCharge]:
        statement = select(ExtraCharge).order_by(ExtraCharge.created_at.desc()).limit(limit)
        if status is not None:
            statement = statement.where(ExtraCharge.status == status)
        if payment_id is not None:
            statement = statement.where(ExtraCharge.payment_id == payment_id)
        return list((await self.session.execute(statement)).scalars())

    async def claim_for_reversal(
        self,
        charge_id: uuid.UUID,
        from_states: Collection[ExtraChargeStatus],
        stale_before: datetime,
    ) -> ExtraCharge | None:
        """Mark the charge as being reversed; None if another caller has it, or it is done. A
        reversal whose caller died (`reversing` since before `stale_before`) is taken over:
        reversing again is safe, NetValve takes one full refund or void of a transaction."""
        stale = and_(
            ExtraCharge.status == ExtraChargeStatus.REVERSING,
            ExtraCharge.updated_at < stale_before,
        )
        return await self.session.scalar(
            update(ExtraCharge)
            .where(
                ExtraCharge.id == charge_id,
                or_(ExtraCharge.status.in_(list(from_states)), stale),
            )
            .values(status=ExtraChargeStatus.REVERSING, reverse_tries=ExtraCharge.reverse_tries + 1)
            .returning(ExtraCharge)
            .execution_options(synchronize_session=False, populate_existing=True)
        )

    async def to_resume(
        self, stale_before: datetime, *, open_too: bool, limit: int
    ) -> list[uuid.UUID]:
        """Reversals whose caller died, and (with `open_too`) charges still to reverse."""
        wanted = [
            and_(
                ExtraCharge.status == ExtraChargeStatus.REVERSING,
                ExtraCharge.updated_at < stale_before,
            )
        ]
        if open_too:
            wanted.append(ExtraCharge.status == ExtraChargeStatus.OPEN)
        result = await self.session.execute(
            select(ExtraCharge.id).where(or_(*wanted)).order_by(ExtraCharge.created_at).limit(limit)
        )
        return list(result.scalars())

    async def count_by_status(self) -> dict[ExtraChargeStatus, tuple[int, int]]:
        """Per status: how many, and their total in minor units (all currencies together)."""
        result = await self.session.execute(
            select(
                ExtraCharge.status,
                func.count(),
                func.coalesce(func.sum(ExtraCharge.amount_minor), 0),
            ).group_by(ExtraCharge.status)
        )
        return {status: (int(count), int(total)) for status, count, total in result}
