"""The NetValve service: one module per job, behind the facade the routes use.

- `payments`: the routes' use cases (pay, capture, refund, cancel, status);
- `medusa`: Medusa's payment session and cart, and whether they may be charged;
- `ledger`: applying NetValve's answer for one attempt to the payment;
- `reconciliation`: settling unknown and pending outcomes from NetValve's records, the sweep;
- `hpf`: the hosted-payment-fields waterfall;
- `webhooks`, `events`, `proven`, `disputes`, `extra_charges`: NetValve's webhooks, from the
  inbox to the ledger, and the money NetValve holds beyond a payment's own charge.

Imports point one way: endpoints → this package → client and repositories → models.
"""

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.netvalve import NetvalveClient
from app.core.config import Settings
from app.db.medusa import MedusaRepository
from app.db.session import Phases
from app.models.payment import Payment
from app.schemas.netvalve import (
    CancelRequest,
    CaptureRequest,
    HpfSessionResponse,
    RefundRequest,
    StatusQuery,
)
from app.schemas.payment import PaymentRequest
from app.services.netvalve.hpf import HostedFields
from app.services.netvalve.ledger import Ledger
from app.services.netvalve.medusa import MedusaCheckout
from app.services.netvalve.payments import Payments
from app.services.netvalve.reconciliation import Reconciler
from app.services.netvalve.results import PaymentResult

__all__ = ["NetvalveService"]


class NetvalveService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: NetvalveClient,
        medusa: MedusaRepository,
        settings: Settings,
    ) -> None:
        ledger = Ledger(sessionmaker, settings)
        checkout = MedusaCheckout(medusa, client)
        self._reconciler = Reconciler(ledger, client, settings)
        self._payments = Payments(ledger, self._reconciler, checkout, client, settings)
        self._hpf = HostedFields(sessionmaker, client, checkout, settings)

    # `phases`: the caller's transactions to continue and to close (see app.db.session.Phases);
    # without them each operation opens and commits its own.
    async def pay(
        self,
        request: PaymentRequest,
        *,
        request_key: str | None = None,
        phases: Phases | None = None,
    ) -> PaymentResult:
        return await self._payments.pay(request, request_key=request_key, phases=phases)

    async def capture(self, request: CaptureRequest, phases: Phases | None = None) -> PaymentResult:
        return await self._payments.capture(request, phases)

    async def refund(
        self,
        request: RefundRequest,
        *,
        request_key: str | None = None,
        phases: Phases | None = None,
    ) -> PaymentResult:
        return await self._payments.refund(request, request_key=request_key, phases=phases)

    async def cancel(self, request: CancelRequest, phases: Phases | None = None) -> PaymentResult:
        return await self._payments.cancel(request, phases)

    async def status(self, query: StatusQuery) -> PaymentResult:
        return await self._payments.status(query)

    async def hpf_session(
        self, payment_session_id: str | None, cart_id: str | None, *, reuse: bool
    ) -> HpfSessionResponse:
        return await self._hpf.session(payment_session_id, cart_id, reuse=reuse)

    async def reconcile(self, payment_id: uuid.UUID) -> Payment:
        return await self._reconciler.reconcile(payment_id)

    async def sweep_once(self, limit: int = 50, stop: asyncio.Event | None = None) -> int:
        return await self._reconciler.sweep_once(limit, stop)
