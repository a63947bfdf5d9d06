"""NetValve's lookups: `/inquiry`, `/transaction` and `/order`."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.sandbox import lookups
from app.sandbox.routes.deps import Authenticated, StateDep
from app.sandbox.routes.responses import answer
from app.sandbox.wire import MISSING_TRANSACTION_ID

router = APIRouter()


def _transaction_id(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


@router.get("/inquiry")
async def inquiry(state: StateDep, _: Authenticated, transactionId: str | None = None) -> Response:
    transaction_id = _transaction_id(transactionId)
    if transaction_id is None:
        return answer(MISSING_TRANSACTION_ID)
    return answer(await lookups.inquiry(state.store, transaction_id))


@router.get("/transaction")
async def transaction(state: StateDep, _: Authenticated, id: str | None = None) -> Response:
    transaction_id = _transaction_id(id)
    if transaction_id is None:
        return answer(MISSING_TRANSACTION_ID)
    return answer(await lookups.get_transaction(state.store, transaction_id))


@router.get("/order")
async def order(request: Request, state: StateDep, _: Authenticated) -> Response:
    return answer(await lookups.get_order(state.store, dict(request.query_params)))
