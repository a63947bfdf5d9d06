"""Every query on the hosted-payment-fields sessions."""

from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.hpf_session import HpfSession

_sessions = cast(Table, HpfSession.__table__)
# Every payment spends its token in its claim's transaction: a Core UPDATE built once, since no
# object in the session holds these rows.
_SPEND = (
    update(_sessions)
    .where(_sessions.c.payment_token == bindparam("token"), _sessions.c.spent_at.is_(None))
    .values(spent_at=bindparam("now"))
)


class HpfSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def live(self, payment_session_id: str, now: datetime) -> HpfSession | None:
        """The newest session that may be handed out again: unexpired, its token unspent."""
        result = await self.session.execute(
            select(HpfSession)
            .where(
                HpfSession.payment_session_id == payment_session_id,
                HpfSession.expires_at > now,
                HpfSession.spent_at.is_(None),
            )
            .order_by(HpfSession.created_at.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    def add(self, hpf_session: HpfSession) -> None:
        self.session.add(hpf_session)

    async def spend(self, payment_token: str, now: datetime) -> int:
        """Retire every session that handed out `payment_token` (a payment attempt is sending it
        to NetValve), whichever Medusa session it was issued for."""
        result = await self.session.execute(_SPEND, {"token": payment_token, "now": now})
        return int(result.rowcount)  # type: ignore[attr-defined]
