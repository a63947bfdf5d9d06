"""Every query on extra_charges."""

import uuid
from collections.abc import Collection

from sqlalchemy import func, select, update
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

    async def list(
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
        self, charge_id: uuid.UUID, from_states: Collection[ExtraChargeStatus]
    ) -> ExtraCharge | None:
        """Mark the charge as being reversed; None if another caller has it, or it is done."""
        return await self.session.scalar(
            update(ExtraCharge)
            .where(ExtraCharge.id == charge_id, ExtraCharge.status.in_(list(from_states)))
            .values(status=ExtraChargeStatus.REVERSING, reverse_tries=ExtraCharge.reverse_tries + 1)
            .returning(ExtraCharge)
            .execution_options(synchronize_session=False, populate_existing=True)
        )

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
