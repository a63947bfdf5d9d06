"""The sandbox's own controls, for tests, scripts and people (not part of NetValve's API): fault
rules and latency, pending payments and chargebacks, what reached the gateway, and reset."""

from decimal import Decimal
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from app.sandbox import transitions
from app.sandbox.faults import FaultRule
from app.sandbox.routes.deps import Authenticated, StateDep
from app.sandbox.routes.responses import WireResponse, answer
from app.sandbox.serialization import summary

router = APIRouter(prefix="/_sandbox")


@router.get("/faults")
async def list_faults(state: StateDep, _: Authenticated) -> list[FaultRule]:
    return state.faults.rules


@router.post("/faults", status_code=201)
async def add_fault(rule: FaultRule, state: StateDep, _: Authenticated) -> FaultRule:
    state.faults.rules.append(rule)
    return rule


@router.delete("/faults", status_code=204)
async def clear_faults(state: StateDep, _: Authenticated) -> None:
    state.faults.rules.clear()


@router.put("/latency", status_code=204)
async def set_latency(state: StateDep, _: Authenticated, ms: float = 0) -> None:
    state.faults.latency_ms = max(ms, 0)


@router.post("/transactions/{transaction_id}/resolve")
async def resolve(
    transaction_id: int, state: StateDep, _: Authenticated, approve: bool = True
) -> Response:
    return answer(await transitions.resolve_pending(state.store, transaction_id, approve))


@router.post("/transactions/{transaction_id}/chargeback")
async def charge_back(
    transaction_id: int, state: StateDep, _: Authenticated, amount: Decimal | None = None
) -> Response:
    return answer(await transitions.charge_back(state.store, transaction_id, amount))


@router.post("/faults/release", status_code=200)
async def release_held(
    state: StateDep,
    _: Authenticated,
    path: str | None = None,
    kind: Literal["hold", "late"] | None = None,
) -> dict[str, int]:
    """Process now the requests `hold` and `late` faults keep (all, or those of `path` and
    `kind`)."""
    return {"released": await state.faults.release(path, kind)}


@router.get("/transactions")
async def list_transactions(
    state: StateDep, _: Authenticated, client_order_prefix: str = ""
) -> Response:
    """Every transaction, for tests that count what reached the gateway."""
    listed = [
        summary(transaction)
        for transaction in state.store.transactions.values()
        if (transaction.client_order_id or "").startswith(client_order_prefix)
    ]
    return WireResponse({"transactions": listed})


@router.get("/webhooks")
async def delivered_webhooks(state: StateDep, _: Authenticated) -> Response:
    return WireResponse({"delivered": state.webhooks.delivered})


@router.post("/reset", status_code=204)
async def reset(state: StateDep, _: Authenticated) -> None:
    state.reset()
