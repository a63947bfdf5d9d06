"""NetValve's payment operations: sale, authorize, capture, cancel and refund."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.sandbox import transitions
from app.sandbox.routes.deps import Authenticated, StateDep, answer_body

router = APIRouter()


@router.post("/sale")
async def sale(request: Request, state: StateDep, _: Authenticated) -> Response:
    return await answer_body(request, lambda body: transitions.pay(state.store, "SALE", body))


@router.post("/authorize", name="authorization")
async def authorize(request: Request, state: StateDep, _: Authenticated) -> Response:
    return await answer_body(
        request, lambda body: transitions.pay(state.store, "AUTHORIZATION", body)
    )


@router.post("/capture")
async def capture(request: Request, state: StateDep, _: Authenticated) -> Response:
    return await answer_body(request, lambda body: transitions.capture(state.store, body))


@router.post("/cancel")
async def cancel(request: Request, state: StateDep, _: Authenticated) -> Response:
    return await answer_body(request, lambda body: transitions.cancel(state.store, body))


@router.post("/refund")
async def refund(request: Request, state: StateDep, _: Authenticated) -> Response:
    return await answer_body(request, lambda body: transitions.refund(state.store, body))
