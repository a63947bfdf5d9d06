"""The hosted-payment-fields waterfall: where the browser gets NetValve's card fields from.

Each source is tried in order (configured override, NetValve's API, the back office's scripts,
a hosted payment page, a static script) and the first that answers wins; the steps skipped are
reported when none does.
"""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.netvalve import (
    Approved,
    HppOrderRequest,
    NetvalveClient,
    NetvalveResult,
    Unavailable,
    UnknownOutcome,
)
from app.core.config import CaptureMode, Settings
from app.db.medusa import MedusaPaymentSession
from app.db.session import transaction
from app.models.hpf_session import HpfSession
from app.repositories.hpf_session_repository import HpfSessionRepository
from app.schemas.netvalve import HpfSessionResponse
from app.services.netvalve.errors import NetvalveError
from app.services.netvalve.medusa import MedusaCheckout

log = structlog.get_logger(__name__)

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
        if reuse:
            # Read before the ledger check (see pay): a payment claimed between the two
            # statements is seen by the check, one claimed before by this read.
            async with transaction(self._sessionmaker) as db:
                live = await HpfSessionRepository(db).live(session.id, now)
        await self._checkout.payable(session, cart)
        currency, amount = self._checkout.charge(session)
        if live is not None:
            return HpfSessionResponse(
                **live.payload, id=live.id, expires_at=live.expires_at, reused=True
            )
        source, payload, steps = await self._waterfall(session, currency, amount)
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
        self, session: MedusaPaymentSession, currency: str, amount: Decimal
    ) -> tuple[str | None, dict[str, Any], list[dict[str, str]]]:
        settings = self._settings
        steps: list[dict[str, str]] = []

        def skipped(step: str, why: str) -> None:
            steps.append({"step": step, "outcome": why})

        if settings.netvalve_hpf_script_src:
            return (
                "override_script",
                {
                    "script_src": str(settings.netvalve_hpf_script_src),
                    "integrity": settings.netvalve_hpf_script_integrity,
                },
                steps,
            )
        if settings.netvalve_hpp_direct_url:
            return "override_hpp", {"redirect_url": str(settings.netvalve_hpp_direct_url)}, steps
        skipped("override", "not configured")

        api = await self._client.initialize_hpf_session()
        if isinstance(api, Approved) and api.body.get("paymentToken"):
            return (
                "api",
                {
                    "script_src": api.body.get("netvalveScriptSrc"),
                    "integrity": api.body.get("integrity"),
                    "payment_token": api.body.get("paymentToken"),
                },
                steps,
            )
        skipped("api", _describe(api))

        if settings.netvalve_basic_auth_username and settings.netvalve_basic_auth_password:
            scripts = await self._client.backoffice_hpf_scripts()
            chosen = _pick_script(scripts)
            if chosen is not None:
                return (
                    "backoffice",
                    {
                        "script_src": chosen.get("netvalveScriptSrc"),
                        "integrity": chosen.get("integrity"),
                    },
                    steps,
                )
            reason = "no active script" if isinstance(scripts, Approved) else _describe(scripts)
            skipped("backoffice", reason)
        else:
            skipped("backoffice", "no basic-auth credentials")

        if settings.netvalve_hpp_fallback_enabled:
            order = await self._client.create_hpp_order(
                HppOrderRequest(
                    amount=amount,
                    currency=currency,
                    client_order_id=f"hpp-{uuid.uuid4().hex}",
                    success_url=str(settings.netvalve_hpp_success_url),
                    cancel_url=str(settings.netvalve_hpp_cancel_url),
                    failed_url=str(settings.netvalve_hpp_failed_url),
                    mode="SALE"
                    if settings.netvalve_capture_mode is CaptureMode.SALE
                    else "AUTHORIZATION",
                )
            )
            if isinstance(order, Approved) and order.body.get("redirectUrl"):
                return "hpp", {"redirect_url": order.body["redirectUrl"]}, steps
            skipped("hpp", _describe(order))
        else:
            skipped("hpp", "fallback disabled")

        if settings.netvalve_hpf_fallback_script_src:
            return "static", {"script_src": str(settings.netvalve_hpf_fallback_script_src)}, steps
        skipped("static", "not configured")
        return None, {}, steps


def _pick_script(scripts: NetvalveResult) -> dict[str, Any] | None:
    if not isinstance(scripts, Approved):
        return None
    usable = [
        item
        for item in scripts.body.get("items", [])
        if isinstance(item, dict)
        and item.get("status") == "ACTIVE"
        and not item.get("deleted")
        and item.get("netvalveScriptSrc")
    ]
    defaults = [item for item in usable if item.get("isDefault")]
    ranked = sorted(defaults or usable, key=lambda item: str(item.get("createdDate") or ""))
    return ranked[-1] if ranked else None


def _describe(result: NetvalveResult) -> str:
    """A step's outcome for the 502 diagnostic: kind and code, never a body or a secret."""
    if isinstance(result, UnknownOutcome | Unavailable):
        return f"{type(result).__name__}: {result.reason}"
    code = getattr(result, "response_code", None)
    status = f"HTTP {result.http_status}" if result.http_status else "no answer"
    return f"{type(result).__name__} ({status}{', ' + code if code else ''})"
