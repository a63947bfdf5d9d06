"""The hosted-payment-fields waterfall: where the browser gets NetValve's card fields from.

Each source is tried in order (configured override, NetValve's API, the back office's scripts,
a hosted payment page, a static script) and the first that answers wins; the steps skipped are
reported when none does.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.netvalve import (
    Approved,
    HpfScriptList,
    HpfSessionInit,
    HppOrder,
    HppOrderRequest,
    NetvalveClient,
    NetvalveResult,
    Unavailable,
    UnknownOutcome,
)
from app.core.config import CaptureMode, Settings
from app.db.session import transaction
from app.models.hpf_session import HpfSession
from app.repositories.hpf_session_repository import HpfSessionRepository
from app.repositories.payment_repository import PaymentRepository
from app.schemas.netvalve import HpfSessionResponse
from app.services.netvalve.errors import NetvalveError
from app.services.netvalve.medusa import MedusaCheckout

log = structlog.get_logger(__name__)

# A source's name and what the browser needs from it.
_Found = tuple[str, dict[str, Any]]

HPF_SESSION_LIFETIME = timedelta(seconds=270)  # NetValve's 300 s, less a margin for the browser


class HpfUnavailable(NetvalveError):
    """No step of the hosted-payment-fields waterfall produced a session."""

    status_code = 502
    message = "No hosted-payment-fields source is available."


def _now() -> datetime:
    return datetime.now(UTC)


class HostedFields:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: NetvalveClient,
        checkout: MedusaCheckout,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._client = client
        self._checkout = checkout
        self._settings = settings

    async def session(
        self, payment_session_id: str | None, cart_id: str | None, *, reuse: bool
    ) -> HpfSessionResponse:
        session = await self._checkout.session(payment_session_id, cart_id)
        cart = await self._checkout.cart(session)
        now = _now()
        live = None
        async with transaction(self._sessionmaker) as db:
            if reuse:
                # Read before the ledger check (see pay): a payment claimed between the two
                # statements is seen by the check, one claimed before by this read.
                live = await HpfSessionRepository(db).live(session.id, now)
            await self._checkout.payable(session, cart, PaymentRepository(db))
        currency, amount = self._checkout.charge(session)
        if live is not None:
            return HpfSessionResponse(
                **live.payload, id=live.id, expires_at=live.expires_at, reused=True
            )
        source, payload, steps = await self._waterfall(currency, amount)
        if source is None:
            raise HpfUnavailable(extra={"steps": steps})
        record = HpfSession(
            id=uuid.uuid4(),
            payment_session_id=session.id,
            source=source,
            payment_token=payload.get("payment_token"),
            payload={
                "payment_session_id": session.id,
                "source": source,
                "amount": format(amount, "f"),
                "currency_code": currency,
                "script_src": payload.get("script_src"),
                "integrity": payload.get("integrity"),
                "payment_token": payload.get("payment_token"),
                "redirect_url": payload.get("redirect_url"),
            },
            expires_at=now + HPF_SESSION_LIFETIME,
        )
        async with transaction(self._sessionmaker) as db:
            HpfSessionRepository(db).add(record)
        log.info("hpf.session_created", payment_session_id=session.id, source=source)
        return HpfSessionResponse(
            **record.payload, id=record.id, expires_at=record.expires_at, reused=False
        )

    async def _waterfall(
        self, currency: str, amount: Decimal
    ) -> tuple[str | None, dict[str, Any], list[dict[str, str]]]:
        """The first source that answers and its payload; why each step before it was skipped."""
        steps: list[dict[str, str]] = []
        sources: list[tuple[str, Callable[[], Awaitable[_Found | str]]]] = [
            ("override", self._override),
            ("api", self._api),
            ("backoffice", self._backoffice),
            ("hpp", lambda: self._hpp(currency, amount)),
            ("static", self._static),
        ]
        for step, source in sources:
            found = await source()
            if not isinstance(found, str):
                return found[0], found[1], steps
            steps.append({"step": step, "outcome": found})
        return None, {}, steps

    async def _override(self) -> _Found | str:
        settings = self._settings
        if settings.netvalve_hpf_script_src:
            return "override_script", {
                "script_src": str(settings.netvalve_hpf_script_src),
                "integrity": settings.netvalve_hpf_script_integrity,
            }
        if settings.netvalve_hpp_direct_url:
            return "override_hpp", {"redirect_url": str(settings.netvalve_hpp_direct_url)}
        return "not configured"

    async def _api(self) -> _Found | str:
        api = await self._client.initialize_hpf_session()
        if not isinstance(api, HpfSessionInit):
            return _describe(api)
        return "api", {
            "script_src": api.script_src,
            "integrity": api.integrity,
            "payment_token": api.payment_token,
        }

    async def _backoffice(self) -> _Found | str:
        settings = self._settings
        if not (settings.netvalve_basic_auth_username and settings.netvalve_basic_auth_password):
            return "no basic-auth credentials"
        scripts = await self._client.backoffice_hpf_scripts()
        chosen = scripts.preferred if isinstance(scripts, HpfScriptList) else None
        if chosen is not None:
            return "backoffice", {"script_src": chosen.script_src, "integrity": chosen.integrity}
        return "no active script" if isinstance(scripts, Approved) else _describe(scripts)

    async def _hpp(self, currency: str, amount: Decimal) -> _Found | str:
        settings = self._settings
        if not settings.netvalve_hpp_fallback_enabled:
            return "fallback disabled"
        sale = settings.netvalve_capture_mode is CaptureMode.SALE
        order = await self._client.create_hpp_order(
            HppOrderRequest(
                amount=amount,
                currency=currency,
                client_order_id=f"hpp-{uuid.uuid4().hex}",
                success_url=str(settings.netvalve_hpp_success_url),
                cancel_url=str(settings.netvalve_hpp_cancel_url),
                failed_url=str(settings.netvalve_hpp_failed_url),
                mode="SALE" if sale else "AUTHORIZATION",
            )
        )
        if isinstance(order, HppOrder):
            return "hpp", {"redirect_url": order.redirect_url}
        return _describe(order)

    async def _static(self) -> _Found | str:
        script_src = self._settings.netvalve_hpf_fallback_script_src
        return ("static", {"script_src": str(script_src)}) if script_src else "not configured"


def _describe(result: NetvalveResult) -> str:
    """A step's outcome for the 502 diagnostic: kind and code, never a body or a secret."""
    if isinstance(result, UnknownOutcome | Unavailable):
        return f"{type(result).__name__}: {result.reason}"
    code = getattr(result, "response_code", None)
    status = f"HTTP {result.http_status}" if result.http_status else "no answer"
    return f"{type(result).__name__} ({status}{', ' + code if code else ''})"
